"""Observability end to end (tests/integration/prometheus_test.sh runs it).

Starts cajald with --metrics_port 0 and --log_format json, and Debian's Prometheus server
scraping it every second with deploy/prometheus/rules.yaml loaded; runs a short job while
scraping /metrics repeatedly, and checks:
  - /healthz and /readyz answer 200;
  - `promtool check metrics` accepts a scrape taken while the job runs;
  - counters (and histogram counts, sums and buckets) never go backwards across the job;
  - cajal_jobs{state="running"}, cajal_queue_depth and the throughput gauge are non-zero
    while it runs and return to 0 when it ends; the final counters add up;
  - Prometheus's HTTP API reports cajal_jobs_succeeded_total == 1 and a step-duration
    histogram count > 0, and the rules file loads with every rule healthy;
  - every metric named by the Grafana dashboard and the rules file is in the live scrape;
  - `promtool check rules` accepts the rules file and `promtool test rules` shows its alerts
    fire on stalled or failing series and not on healthy ones;
  - every stderr line is a JSON object with time, level and message, and the job's state
    changes are logged once each with its job_id.

usage: prometheus_check.py BUILD_DIR WORK_DIR STUB_DIR
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

build, work, stubs = sys.argv[1:4]
sys.path.insert(0, stubs)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cajald_harness import Checks, Server, mnist_spec, pb  # noqa: E402

ROOT = os.getcwd()
DASHBOARD = os.path.join(ROOT, 'deploy/prometheus/grafana-dashboard.json')
RULES = os.path.join(ROOT, 'deploy/prometheus/rules.yaml')
STEPS = 400
BATCH = 64

checks = Checks()
prometheus = None


def stop_prometheus():
    if prometheus is not None and prometheus.poll() is None:
        prometheus.kill()
        prometheus.wait()


signal.signal(signal.SIGTERM, lambda *_: (stop_prometheus(), sys.exit(143)))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """(status, body); status 0 when the server cannot be reached."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ''


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def parse(text):
    """{(name, labels): value} and {family: type} from an exposition."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith('# TYPE '):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line and not line.startswith('#'):
            m = SAMPLE.match(line)
            if m:
                samples[(m.group(1), m.group(2) or '')] = float(m.group(3))
    return samples, types


def monotonic_series(samples, types):
    """The series that must never decrease: counters and histogram parts."""
    out = {}
    for (name, labels), v in samples.items():
        for family, kind in types.items():
            if kind == 'counter' and name == family:
                out[(name, labels)] = v
            elif kind == 'histogram' and name in (family + '_bucket', family + '_count',
                                                  family + '_sum'):
                out[(name, labels)] = v
    return out


def value(samples, name, labels=''):
    return samples.get((name, labels))


# ---- cajald ------------------------------------------------------------------------------------
server = Server(build, os.path.join(work, 'data'), os.path.join(work, 'cajald.log'),
                '--log_format', 'json').start()  # the harness passes --metrics_port 0
metrics_port = None
for _ in range(100):
    m = re.search(r'serving metrics on http://127\.0\.0\.1:(\d+)/metrics', server.log())
    if m:
        metrics_port = int(m.group(1))
        break
    time.sleep(0.05)
checks.check('cajald prints the metrics port it bound', metrics_port is not None, server.log())
if metrics_port is None:
    sys.exit(checks.summary())
base = f'http://127.0.0.1:{metrics_port}'
checks.check('/healthz is 200', http_get(base + '/healthz')[0] == 200)
checks.check('/readyz is 200 once serving', http_get(base + '/readyz')[0] == 200)
status, text = http_get(base + '/metrics')
idle, _ = parse(text)
checks.check('/metrics answers before any job', status == 200 and
             value(idle, 'cajal_jobs_submitted_total') == 0, text[:500])

# ---- Prometheus --------------------------------------------------------------------------------
prom_port = free_port()
config = os.path.join(work, 'prometheus.yml')
with open(config, 'w') as f:
    f.write(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ['{RULES}']
scrape_configs:
  - job_name: cajald
    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]
""")
prom_log = open(os.path.join(work, 'prometheus.log'), 'wb')
prometheus = subprocess.Popen(
    ['/usr/bin/prometheus', f'--config.file={config}',
     f'--storage.tsdb.path={os.path.join(work, "tsdb")}',
     f'--web.listen-address=127.0.0.1:{prom_port}'],
    stdout=prom_log, stderr=prom_log)
prom = f'http://127.0.0.1:{prom_port}'


def query(expr):
    status, body = http_get(prom + '/api/v1/query?' + urllib.parse.urlencode({'query': expr}))
    if status != 200:
        return None
    result = json.loads(body)['data']['result']
    return float(result[0]['value'][1]) if result else None


# ---- A job, scraped all along --------------------------------------------------------------------
stub = server.stub()
job = stub.SubmitJob(pb.SubmitJobRequest(spec=mnist_spec(max_steps=STEPS, checkpoint_every=100)),
                     timeout=30)
scrapes, running_scrape = [], None
deadline = time.monotonic() + 180
state = job.state
while time.monotonic() < deadline:
    status, text = http_get(base + '/metrics')
    if status == 200:
        samples, types = parse(text)
        scrapes.append((samples, types))
        if running_scrape is None and value(samples, 'cajal_jobs', '{state="running"}') == 1 \
                and (value(samples, 'cajal_steps_total') or 0) > 0:
            running_scrape = text
    state = stub.GetJob(pb.GetJobRequest(id=job.id), timeout=10).state
    if state in (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED):
        break
    time.sleep(0.05)
checks.check('the job succeeded', state == pb.JOB_STATE_SUCCEEDED, pb.JobState.Name(state))
status, final_text = http_get(base + '/metrics')
final, final_types = parse(final_text)
scrapes.append((final, final_types))
checks.check(f'scraped while the job ran ({len(scrapes)} scrapes)', running_scrape is not None)

if running_scrape is not None:
    path = os.path.join(work, 'running.prom')
    with open(path, 'w') as f:
        f.write(running_scrape)
    with open(path, 'rb') as f:
        r = subprocess.run(['promtool', 'check', 'metrics'], stdin=f, capture_output=True)
    checks.check('promtool check metrics accepts a scrape taken while a job runs',
                 r.returncode == 0, (r.stdout + r.stderr).decode())

backwards = []
for (prev, prev_types), (cur, cur_types) in zip(scrapes, scrapes[1:]):
    a, b = monotonic_series(prev, prev_types), monotonic_series(cur, cur_types)
    for key, v in a.items():
        if key in b and b[key] < v:
            backwards.append(f'{key} {v} -> {b[key]}')
        elif key not in b:
            backwards.append(f'{key} disappeared')
checks.check('no counter or histogram series goes backwards across the job', not backwards,
             '; '.join(backwards[:5]))

seen_running = [s for s, _ in scrapes if value(s, 'cajal_jobs', '{state="running"}') == 1]
checks.check('cajal_jobs{state="running"} is 1 while the job runs', bool(seen_running))
checks.check('throughput is > 0 while the job runs', any(
    (value(s, 'cajal_training_throughput_samples_per_second') or 0) > 0 for s, _ in scrapes))
checks.check('cajal_job_memory_reserved_bytes is the job\'s estimate while it runs', any(
    value(s, 'cajal_job_memory_reserved_bytes') == job.memory_estimate.total_bytes > 0 for s in seen_running),
    str([value(s, 'cajal_job_memory_reserved_bytes') for s in seen_running][:3]) +
    f' vs {job.memory_estimate.total_bytes}')
checks.check('cajal_job_memory_capacity_bytes is > 0', (value(final, 'cajal_job_memory_capacity_bytes') or 0) > 0)
checks.check('cajal_queue_depth was 1 or 0 throughout', all(
    value(s, 'cajal_queue_depth') in (0, 1) for s, _ in scrapes))
for name, labels in (('cajal_jobs', '{state="running"}'), ('cajal_jobs', '{state="queued"}'),
                     ('cajal_queue_depth', ''), ('cajal_job_memory_reserved_bytes', ''),
                     ('cajal_training_throughput_samples_per_second', '')):
    checks.check(f'{name}{labels} returns to 0 when the job ends',
                 value(final, name, labels) == 0, str(value(final, name, labels)))
expected = {
    ('cajal_jobs_submitted_total', ''): 1, ('cajal_jobs_succeeded_total', ''): 1,
    ('cajal_jobs_failed_total', ''): 0, ('cajal_jobs_cancelled_total', ''): 0,
    ('cajal_jobs', '{state="succeeded"}'): 1, ('cajal_steps_total', ''): STEPS,
    ('cajal_samples_total', ''): STEPS * BATCH, ('cajal_step_duration_seconds_count', ''): STEPS,
    ('cajal_checkpoint_failures_total', ''): 0,
    ('cajal_admission_decisions_total', '{decision="accepted"}'): 1,
    ('cajal_admission_decisions_total', '{decision="too_large"}'): 0,
    ('cajal_rpc_requests_total',
     '{code="OK",method="cajal.v1.TrainingService/SubmitJob"}'): 1,
}
for key, want in expected.items():
    checks.check(f'{key[0]}{key[1]} == {want} after the job', value(final, *key) == want,
                 str(value(final, *key)))
for name in ('cajal_checkpoint_duration_seconds_count', 'cajal_store_write_duration_seconds_count',
             'cajal_rpc_duration_seconds_count'):
    total = sum(v for (n, _), v in final.items() if n == name)
    checks.check(f'{name} > 0 after the job', total > 0, str(total))
checks.check('no label is a job id', job.id not in final_text and 'job_id' not in final_text)

# ---- Prometheus sees it ------------------------------------------------------------------------
deadline = time.monotonic() + 60
succeeded = steps = None
while time.monotonic() < deadline:
    succeeded = query('cajal_jobs_succeeded_total')
    steps = query('sum(cajal_step_duration_seconds_count)')
    if succeeded == 1 and steps and steps > 0:
        break
    time.sleep(0.5)
checks.check('Prometheus: cajal_jobs_succeeded_total == 1', succeeded == 1, str(succeeded))
checks.check('Prometheus: cajal_step_duration_seconds_count > 0', bool(steps and steps > 0),
             str(steps))
checks.check('Prometheus: the scrape target is up', query('up{job="cajald"}') == 1)
rules = []
deadline = time.monotonic() + 15  # every rule evaluated at least once (1 s interval)
while time.monotonic() < deadline:
    status, body = http_get(prom + '/api/v1/rules')
    rules = [r for g in json.loads(body)['data']['groups'] for r in g['rules']] if status == 200 else []
    if rules and all(r.get('health') == 'ok' for r in rules):
        break
    time.sleep(0.5)
checks.check(f'Prometheus loaded deploy/prometheus/rules.yaml ({len(rules)} rules, all healthy)',
             bool(rules) and all(r.get('health') == 'ok' for r in rules),
             str([(r['name'], r.get('health'), r.get('lastError')) for r in rules]))

# ---- The dashboard and the rules name only metrics that exist ----------------------------------
exported = {name for name, _ in final} | set(final_types)
with open(RULES) as f:
    rule_groups = yaml.safe_load(f)['groups']
recorded = {r['record'] for g in rule_groups for r in g['rules'] if 'record' in r}
exprs = [(f"rules {r.get('record') or r.get('alert')}", r['expr'])
         for g in rule_groups for r in g['rules']]
with open(DASHBOARD) as f:
    dashboard = json.load(f)


def walk(node, path):
    if isinstance(node, dict):
        for key in ('expr', 'definition'):  # panel queries; template variable queries
            if isinstance(node.get(key), str):
                exprs.append((f'dashboard {path}', node[key]))
        for k, v in node.items():
            walk(v, f'{path}.{k}')
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, f'{path}[{i}]')


walk(dashboard, '')
r = subprocess.run(['promtool', 'check', 'rules', RULES], capture_output=True)
checks.check('promtool check rules deploy/prometheus/rules.yaml', r.returncode == 0,
             (r.stdout + r.stderr).decode())
r = subprocess.run(['promtool', 'test', 'rules', 'rules_test.yaml'], capture_output=True,
                   cwd=os.path.dirname(RULES))
checks.check('promtool test rules: the alerts fire on stalled/failing series, not on healthy ones',
             r.returncode == 0, (r.stdout + r.stderr).decode())
# Names are read after dropping quoted strings (label values, templates) and [ranges]:
# metric names start cajal_ or process_; recording-rule names have a colon.
METRIC = re.compile(r'(?<![\w:$])((?:cajal|process)_\w+)')
RECORDED = re.compile(r'(?<![\w:$])([a-zA-Z_]\w*:[\w:]*\w)')
unknown, empty = [], []
for where, e in exprs:
    bare = re.sub(r'\[[^\]]*\]', '[]', re.sub(r'"(?:[^"\\]|\\.)*"', '""', e))
    names, records = METRIC.findall(bare), RECORDED.findall(bare)
    if not names and not records:
        empty.append(f'{where}: {e}')
    unknown += [f'{where}: {n}' for n in names if n not in exported]
    unknown += [f'{where}: {n} (no such recording rule)' for n in records if n not in recorded]
checks.check(f'every dashboard and rule expression ({len(exprs)}) names a metric',
             not empty and len(exprs) >= 20, '; '.join(empty))
checks.check('every metric the dashboard and the rules name is in the live scrape',
             not unknown, '; '.join(unknown))
panels = ' '.join(e for w, e in exprs if w.startswith('dashboard'))
for name in ('cajal_training_throughput_samples_per_second', 'cajal_step_duration_seconds_bucket',
             'cajal_jobs', 'cajal_queue_depth', 'cajal_rpc_requests_total'):
    checks.check(f'the dashboard plots {name}', re.search(rf'\b{name}\b', panels) is not None)

# ---- Logs ----------------------------------------------------------------------------------------
server.signal(signal.SIGTERM)
code = server.wait(30)
checks.check('cajald exits 0 on SIGTERM', code == 0, str(code))
lines = [l for l in server.log().splitlines() if l and not l.startswith('---- start')]
parsed, bad = [], []
for l in lines:
    try:
        o = json.loads(l)
        if not all(isinstance(o.get(k), str) for k in ('time', 'level', 'message')):
            bad.append(l)
        parsed.append(o)
    except ValueError:
        bad.append(l)
checks.check(f'every stderr line ({len(lines)}) is a JSON object with time, level, message',
             bool(lines) and not bad, '; '.join(bad[:3]))
mine = [o for o in parsed if o.get('job_id') == job.id]
states = [o.get('state') for o in mine]
checks.check('the job\'s state changes are logged once each, with its job_id',
             states == ['queued', 'running', 'succeeded'], str(mine))
checks.check('the time field is RFC 3339 UTC', all(
    re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', o['time']) for o in parsed))

prometheus.send_signal(signal.SIGTERM)
try:
    checks.check('prometheus stops on SIGTERM', prometheus.wait(30) == 0)
except subprocess.TimeoutExpired:
    checks.check('prometheus stops on SIGTERM', False)
stop_prometheus()
sys.exit(checks.summary())
