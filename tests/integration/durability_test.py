#!/usr/bin/python3
"""Durability: a kill -9 crash loop, and SIGTERM shutdowns, against real cajald processes.

  durability_test.py STUB_DIR BUILD_DIR WORK_DIR [ROUNDS]

Crash loop: ROUNDS times (default 7) start cajald on one data dir, submit jobs, kill -9 at a
varied moment (right after a SubmitJob returned, while a SubmitJob is in flight, mid-training
after a random delay, right after a checkpoint file changed), restart. Every round checks that
each acknowledged job is still there; at the end every acknowledged job SUCCEEDED, the SQLite
store passes PRAGMA integrity_check, each job's event history is 0..n-1 without gaps and its
metric history has `loss` for epochs 1..E exactly once. A Fashion-MNIST job cut at max_steps
with checkpoint_every_steps shows that a resumed job continues from its checkpoint.

SIGTERM: exit 0 within --shutdown_grace, health NOT_SERVING while draining, the job resumes at
the step where it stopped; a second SIGTERM, or the grace running out, still exits 0.

Crash loops (the server's default --crash_loop_limit 2; the crash loop above turns it off, since
it kills jobs mid-run on purpose): a job running when cajald is killed with SIGKILL twice in a
row is FAILED at the third start with "the server stopped unexpectedly twice while running this
job", and the server runs the next job; a SIGTERM between two kills resets the count.
"""
import os
import shutil
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools'))
from cajald_harness import (Checks, Server, grpc, health, mnist_spec, pb, rpc_error,  # noqa: E402
                            wait_for, xor_spec)

BUILD, WORK = sys.argv[2], sys.argv[3]
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 7
rng = random.Random(int(os.environ.get('CAJAL_TEST_SEED', time.time())))
t = Checks()


def get(stub, job_id, timeout=10):
    return stub.GetJob(pb.GetJobRequest(id=job_id), timeout=timeout)


def checkpoint_path(data, job_id):
    return os.path.join(data, 'jobs', job_id, 'checkpoint.cajal')


def first_progress_after_restart(stub, job_id, timeout=60):
    """The first progress.step > 0 that GetJob shows for a RUNNING job, polled every 10 ms."""
    def probe():
        j = get(stub, job_id)
        if j.state in (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED):
            return ('done', j.progress.step)
        if j.state == pb.JOB_STATE_RUNNING and j.progress.step > 0:
            return ('running', j.progress.step)
        return None
    return wait_for(probe, timeout, interval=0.01)


def crash_loop():
    data = os.path.join(WORK, 'crash')
    log = os.path.join(WORK, 'cajald-crash.log')
    acknowledged = {}  # id -> epochs (xor) or 0 (mnist)
    unacknowledged_ok = set()  # submits whose answer was lost in a kill: may or may not exist
    resumed_evidence = []
    moments = ['after-submit', 'in-flight-submit', 'mid-training', 'after-checkpoint', 'mid-training',
               'after-checkpoint', 'in-flight-submit', 'after-submit']
    mnist_id = None
    for rnd in range(ROUNDS):
        moment = moments[rnd % len(moments)]
        server = Server(BUILD, data, log, '--max_concurrent_jobs', '2', '--crash_loop_limit', '0').start()
        stub = server.stub()
        missing = [i for i in acknowledged if rpc_error(lambda: get(stub, i)) is not None]
        t.check(f'round {rnd + 1}: every acknowledged job is still there ({len(acknowledged)})', not missing, missing)

        if mnist_id is not None and rnd == 2:
            # Resumed from its checkpoint: the first step seen after the restart is at least the
            # checkpoint before the crash, not a fresh start.
            before = mnist_before
            seen = first_progress_after_restart(stub, mnist_id)
            resumed_evidence.append((before, seen))
            t.check(f'round {rnd + 1}: the Fashion-MNIST job resumes at step >= {before} (its checkpoint), not 0',
                    seen is not None and seen[1] >= before and before >= 25, f'saw {seen}')

        if rnd == 0:
            # A job with step checkpoints; the next round kills it mid-run after >= 2 checkpoints.
            mnist_id = stub.SubmitJob(pb.SubmitJobRequest(spec=mnist_spec(max_steps=300, checkpoint_every=25)),
                                      timeout=30).id
            acknowledged[mnist_id] = 0
        epochs = rng.randint(120, 300)
        job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=epochs, seed=rnd)), timeout=30)
        acknowledged[job.id] = epochs

        if rnd == 1:
            # Kill the Fashion-MNIST job mid-run, after its second checkpoint.
            step = wait_for(lambda: (lambda j: j.progress.step if j.progress.step >= 60 else 0)(get(stub, mnist_id)),
                            120, interval=0.02)
            mnist_before = ((step or 1) - 1) // 25 * 25
            server.kill9()
            t.check(f'round {rnd + 1}: kill -9 with the Fashion-MNIST job at step {step}', step is not None)
            continue

        if moment == 'after-submit':
            server.kill9()
        elif moment == 'in-flight-submit':
            result = {}

            def submit_now(epochs=rng.randint(50, 150), seed=100 + rnd):
                try:
                    result['job'] = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=epochs, seed=seed),
                                                                       request_id=f'inflight-{rnd}'), timeout=10)
                    result['epochs'] = epochs
                except grpc.RpcError as e:
                    result['error'] = e
            th = threading.Thread(target=submit_now)
            th.start()
            time.sleep(rng.uniform(0, 0.02))
            server.kill9()
            th.join()
            if 'job' in result:
                acknowledged[result['job'].id] = result['epochs']
            else:
                unacknowledged_ok.add(f'inflight-{rnd}')
        elif moment == 'mid-training':
            time.sleep(rng.uniform(0.1, 1.5))
            server.kill9()
        elif moment == 'after-checkpoint':
            path = checkpoint_path(data, job.id)
            first = wait_for(lambda: os.path.exists(path) and os.stat(path).st_mtime_ns, 60, interval=0.005)
            wait_for(lambda: os.path.exists(path) and os.stat(path).st_mtime_ns != first, 30, interval=0.002)
            server.kill9()
        t.check(f'round {rnd + 1}: kill -9 {moment}', server.proc.returncode == -9, server.proc.returncode)

    # Last start: everything must finish.
    server = Server(BUILD, data, log, '--max_concurrent_jobs', '2', '--crash_loop_limit', '0').start()
    stub = server.stub()
    deadline = time.monotonic() + 150
    states = {}
    for job_id in acknowledged:
        j = wait_for(lambda: (lambda j: j if j.state in (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED,
                                                         pb.JOB_STATE_CANCELLED) else None)(get(stub, job_id)),
                     max(1, deadline - time.monotonic()), interval=0.2)
        states[job_id] = (pb.JobState.Name(j.state), j.error) if j else 'not finished'
    bad = {i: s for i, s in states.items() if s != ('JOB_STATE_SUCCEEDED', '')}
    t.check(f'every acknowledged job ({len(acknowledged)}) SUCCEEDED', not bad, bad)

    listed = set()
    token = ''
    while True:
        page = stub.ListJobs(pb.ListJobsRequest(page_size=100, page_token=token), timeout=10)
        listed |= {j.id for j in page.jobs}
        token = page.next_page_token
        if not token:
            break
    extra = listed - set(acknowledged)
    # A submit whose answer was lost may have been stored (then it must finish too) or not.
    extra_jobs = [wait_for(lambda: (lambda j: j if j.state == pb.JOB_STATE_SUCCEEDED else None)(get(stub, i)),
                           max(1, deadline - time.monotonic()), interval=0.2) or get(stub, i) for i in extra]
    t.check('jobs beyond the acknowledged ones came from in-flight submits, and finished',
            all(j.request_id in unacknowledged_ok and j.state == pb.JOB_STATE_SUCCEEDED for j in extra_jobs),
            [(j.id, j.request_id, j.state) for j in extra_jobs])

    gaps = {}
    for job_id, epochs in acknowledged.items():
        events = list(stub.WatchJob(pb.WatchJobRequest(id=job_id), timeout=60))
        seqs = [e.sequence for e in events]
        if seqs != list(range(len(events))):
            gaps[job_id] = ('events', seqs)
        points = stub.GetJobMetrics(pb.GetJobMetricsRequest(id=job_id), timeout=30).points
        pairs = [(p.name, p.epoch) for p in points]
        if len(pairs) != len(set(pairs)):
            gaps[job_id] = ('duplicate metric points', sorted(pairs))
        if epochs:
            losses = [p.epoch for p in points if p.name == 'loss']
            if losses != list(range(1, epochs + 1)):
                gaps[job_id] = ('loss epochs', losses[:5], '...', len(losses), 'of', epochs)
        states = [e.state for e in events if e.WhichOneof('kind') == 'state']
        if states[0] != pb.JOB_STATE_QUEUED or states[-1] != pb.JOB_STATE_SUCCEEDED or \
                pb.JOB_STATE_FAILED in states:
            gaps[job_id] = ('states', states)
    t.check('each job: events 0..n-1, no duplicate metric points, loss for epochs 1..E exactly once',
            not gaps, gaps)
    server.signal(15)
    t.check('the last cajald exits 0 on SIGTERM', server.wait(30) == 0)
    r = subprocess.run(['sqlite3', os.path.join(data, 'cajal.db'), 'PRAGMA integrity_check'],
                       capture_output=True, text=True, timeout=60)
    t.check('PRAGMA integrity_check is ok', r.stdout.strip() == 'ok', r.stdout + r.stderr)
    leftovers = [i for i in acknowledged if os.path.exists(checkpoint_path(data, i))]
    t.check('finished jobs leave no checkpoint behind', not leftovers, leftovers)
    t.check('the kills hit a running job at least once (checkpoints were written and used)',
            resumed_evidence != [], resumed_evidence)


def sigterm():
    data = os.path.join(WORK, 'term')
    log = os.path.join(WORK, 'cajald-term.log')
    grace = 10
    server = Server(BUILD, data, log, '--shutdown_grace', str(grace)).start()
    stub = server.stub()
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=mnist_spec(max_steps=500, checkpoint_every=20)), timeout=30)
    step = wait_for(lambda: (lambda j: j.progress.step if j.progress.step >= 50 else 0)(get(stub, job.id)), 120,
                    interval=0.02)
    t.check(f'SIGTERM: the job is running (step {step})', step is not None)
    ch = server.channel()
    t.check('SIGTERM: health SERVING before', health(ch) == 'SERVING')
    start = time.monotonic()
    server.signal(15)
    # The signal is taken on cajald's sigwait thread: poll until health changes.
    during = wait_for(lambda: (lambda h: h if h != 'SERVING' else None)(health(ch, timeout=2)), 3, interval=0.01)
    e = rpc_error(lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()), timeout=5))
    code = server.wait(grace + 5)
    took = time.monotonic() - start
    t.check(f'SIGTERM: exit 0 within --shutdown_grace {grace} s (took {took:.1f} s)', code == 0 and took <= grace,
            code)
    # The drain may already be over when the probe lands: then the port is closed (UNAVAILABLE).
    # NOT_SERVING while RPCs drain; once gRPC itself shuts down, calls end CANCELLED or UNAVAILABLE.
    t.check(f'SIGTERM: health turns {during} within 3 s of the signal',
            during in ('NOT_SERVING', 'CANCELLED', 'UNAVAILABLE'))
    t.check('SIGTERM: a submit after that is refused (UNAVAILABLE or CANCELLED)',
            e is not None and e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), e)
    t.check('SIGTERM: a checkpoint was left for the next server', os.path.exists(checkpoint_path(data, job.id)))

    server = Server(BUILD, data, log, '--shutdown_grace', str(grace)).start()
    stub = server.stub()
    seen = first_progress_after_restart(stub, job.id)
    t.check(f'SIGTERM: after restart the job continues from step >= {step}, not 0 (saw {seen})',
            seen is not None and seen[1] >= step)
    done = wait_for(lambda: (lambda j: j if j.state == pb.JOB_STATE_SUCCEEDED else None)(get(stub, job.id)), 120)
    t.check('SIGTERM: the resumed job SUCCEEDED with 500 steps', done is not None and done.progress.step == 500,
            done.progress if done else get(stub, job.id))
    points = stub.GetJobMetrics(pb.GetJobMetricsRequest(id=job.id), timeout=30).points
    pairs = [(p.name, p.epoch) for p in points]
    t.check('SIGTERM: no duplicate metric points', len(pairs) == len(set(pairs)) and ('loss', 1) in pairs, pairs)

    # A watcher keeps an RPC open, so the drain lasts until grace/2: a second SIGTERM ends it
    # at once, and with no second signal the grace running out ends it.
    for second_signal in (True, False):
        g = 60 if second_signal else 4
        server.kill9()
        server = Server(BUILD, data, log, '--shutdown_grace', str(g)).start()
        stub = server.stub()
        long_job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=100000)), timeout=30)
        watch = stub.WatchJob(pb.WatchJobRequest(id=long_job.id), timeout=120)
        next(watch)
        start = time.monotonic()
        server.signal(15)
        if second_signal:
            time.sleep(1)
            server.signal(15)
        code = server.wait(g + 10)
        took = time.monotonic() - start
        what = 'a second SIGTERM' if second_signal else f'the grace ({g} s) running out'
        limit = 5 if second_signal else g + 3
        t.check(f'SIGTERM with a watcher open: {what} exits 0 (took {took:.1f} s)', code == 0 and took <= limit, code)
        watch.cancel()
    server = Server(BUILD, data, log).start()
    stub = server.stub()
    j = get(stub, long_job.id)
    t.check('after those exits the long job is queued or running again, not lost',
            j.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING), j.state)
    stub.CancelJob(pb.CancelJobRequest(id=long_job.id), timeout=30)
    server.kill9()


def storage_failure():
    """A job whose files can no longer be written fails with a clear error; the server stays up
    and keeps serving reads. (Root ignores permissions, so the job's directory is replaced by a
    plain file: every write under it then fails with ENOTDIR, as on a dead or read-only disk.)"""
    data = os.path.join(WORK, 'storage')
    log = os.path.join(WORK, 'cajald-storage.log')
    server = Server(BUILD, data, log).start()
    stub = server.stub()
    done = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()), timeout=30)
    wait_for(lambda: get(stub, done.id).state == pb.JOB_STATE_SUCCEEDED, 60)
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=mnist_spec(max_steps=100000, checkpoint_every=20)),
                         timeout=30)
    step = wait_for(lambda: (lambda j: j.progress.step if j.progress.step >= 5 else 0)(get(stub, job.id)), 120,
                    interval=0.02)
    t.check(f'storage: the job is running (step {step})', step is not None)
    job_dir = os.path.join(data, 'jobs', job.id)
    shutil.rmtree(job_dir)
    with open(job_dir, 'w') as f:
        f.write('not a directory')
    failed = wait_for(lambda: (lambda j: j if j.state == pb.JOB_STATE_FAILED else None)(get(stub, job.id)), 60)
    t.check('storage: the job FAILED when its checkpoint could not be written', failed is not None,
            get(stub, job.id).state)
    t.check('storage: its error names the checkpoint and the cause',
            failed is not None and 'cannot write a checkpoint' in failed.error and 'Not a directory' in failed.error,
            failed.error if failed else '')
    t.check('storage: the server still serves reads (an earlier job, the list)',
            get(stub, done.id).state == pb.JOB_STATE_SUCCEEDED
            and len(stub.ListJobs(pb.ListJobsRequest(), timeout=10).jobs) == 2)
    after = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(seed=8)), timeout=30)
    t.check('storage: and still runs new jobs to the end',
            wait_for(lambda: get(stub, after.id).state == pb.JOB_STATE_SUCCEEDED, 60) is not None)
    server.kill9()


def training_in_this_server(stub, job_id, timeout=120):
    """Waits until the job takes steps in this server (its stored progress does not count: a
    resumed job shows it before it runs); returns the step, or None."""
    first = get(stub, job_id).progress.step
    return wait_for(lambda: (lambda j: j.progress.step if j.state == pb.JOB_STATE_RUNNING and
                             j.progress.step >= first + 2 else 0)(get(stub, job_id)), timeout, interval=0.02)


def crash_loop_rule():
    data = os.path.join(WORK, 'crash-rule')
    log = os.path.join(WORK, 'cajald-crash-rule.log')
    message = 'the server stopped unexpectedly twice while running this job'
    server = Server(BUILD, data, log).start()
    stub = server.stub()
    looping = stub.SubmitJob(pb.SubmitJobRequest(spec=mnist_spec(max_steps=1000000, checkpoint_every=20, epochs=1000)), timeout=30).id
    waiting = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=3)), timeout=30).id
    for kill in (1, 2):
        step = training_in_this_server(stub, looping)
        server.kill9()
        t.check(f'crash loop rule: SIGKILL {kill} with the job running (step {step})', step is not None)
        server = Server(BUILD, data, log).start()
        stub = server.stub()
        j = get(stub, looping)
        if kill == 1:
            t.check('crash loop rule: after one unclean stop the job is RUNNING again (resumed)',
                    j.state == pb.JOB_STATE_RUNNING, (j.state, j.error))
    t.check(f'crash loop rule: after the second, it is FAILED "{message}"',
            j.state == pb.JOB_STATE_FAILED and message in j.error, (pb.JobState.Name(j.state), j.error))
    done = wait_for(lambda: get(stub, waiting).state == pb.JOB_STATE_SUCCEEDED, 60)
    t.check('crash loop rule: the server serves on and runs the job queued behind it', done)
    events = [e for e in stub.WatchJob(pb.WatchJobRequest(id=looping), timeout=30)]
    t.check('crash loop rule: its history ends with FAILED and the message',
            events[-1].state == pb.JOB_STATE_FAILED and message in events[-1].error, events[-1])

    # A clean shutdown between two kills: the count starts over, the job is resumed.
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=mnist_spec(max_steps=1000000, checkpoint_every=20, epochs=1000)), timeout=30).id
    for how in ('SIGKILL', 'SIGTERM', 'SIGKILL'):
        step = training_in_this_server(stub, job)
        if how == 'SIGKILL':
            server.kill9()
        else:
            server.signal(15)
            server.wait(30)
        t.check(f'crash loop rule: {how} with the second job running (step {step})', step is not None)
        server = Server(BUILD, data, log).start()
        stub = server.stub()
    j = get(stub, job)
    t.check('crash loop rule: SIGKILL, SIGTERM, SIGKILL leaves the job RUNNING (a clean stop resets the count)',
            j.state == pb.JOB_STATE_RUNNING, (pb.JobState.Name(j.state), j.error))
    t.check('crash loop rule: and it trains on', training_in_this_server(stub, job) is not None)
    stub.CancelJob(pb.CancelJobRequest(id=job), timeout=30)
    server.kill9()


def main():
    start = time.monotonic()
    crash_loop_rule()
    print(f'(crash loop rule took {time.monotonic() - start:.0f} s)', flush=True)
    start = time.monotonic()
    crash_loop()
    print(f'(crash loop took {time.monotonic() - start:.0f} s)', flush=True)
    start = time.monotonic()
    sigterm()
    print(f'(SIGTERM tests took {time.monotonic() - start:.0f} s)', flush=True)
    storage_failure()
    return t.summary()


if __name__ == '__main__':
    sys.exit(main())
