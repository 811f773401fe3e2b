#!/usr/bin/python3
"""cajal against the PyTorch peer (../shared/bench/torch_peer.py), measured in the same run.

  bench/vs_torch.py mlp|cnn|lstm [--steps N] [--threads 2] [--batch 64] [--repeat 3]

Runs the peer's `throughput MODEL` and `cajal train` on the same model, data (Fashion-MNIST,
pixels scaled to [0,1]), optimizer (Adam 1e-3), batch and threads, one after the other (never
at once: OpenMP oversubscription would distort both), `--repeat` times each, and prints each
run's samples/s and peak RSS, the best of each, and the ratios cajal/peer.
Both sides time only their training steps (the batch gather, forward, loss, backward and
update), not data loading or evaluation; peak RSS is each process's ru_maxrss.
Models: mlp (784-256-128-10 ReLU; 1500 steps by default), cnn (DESIGN.md's CNN,
examples/cnn.yaml: conv5x5x32 p2, relu, maxpool2, conv5x5x64 p2, relu, maxpool2, dense 1024,
relu, dense 10; 300 steps by default), lstm (examples/lstm.yaml: LSTM 28->128 over the 28
image rows, last step -> dense 10; 500 steps by default, as the peer).

Both sides also get an achieved GFLOP/s: samples/s times the conv and dense FLOPs of one sample's
training step (forward, backward-weights, and backward-data for every layer but the first, whose
input needs no gradient on either side; 2 FLOPs per multiply-add; pooling, activations, loss and
update not counted), and its share of the FP32 peak that bench/sgemm_peak (a 2048^3 dnnl_sgemm
with the same threads) measures in the same run, before each repeat. Build it with
`ninja -C build sgemm_peak`.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.environ.get('CAJAL_TORCH_PEER', os.path.join(ROOT, '..', 'shared', 'bench', 'torch_peer.py'))
SPECS = {'mlp': 'examples/mlp.yaml', 'cnn': 'examples/cnn.yaml', 'lstm': 'examples/lstm.yaml'}
DEFAULT_STEPS = {'mlp': 1500, 'cnn': 300, 'lstm': 500}

# The layers that do the arithmetic, per model: ('conv', in_channels, out_channels, kernel,
# output height·width), ('dense', inputs, outputs) and ('lstm', steps, features, units), in
# network order.
GEOMETRY = {
    'mlp': [('dense', 784, 256), ('dense', 256, 128), ('dense', 128, 10)],
    'cnn': [('conv', 1, 32, 5, 28 * 28), ('conv', 32, 64, 5, 14 * 14),
            ('dense', 64 * 7 * 7, 1024), ('dense', 1024, 10)],
    'lstm': [('lstm', 28, 28, 128), ('dense', 128, 10)],
}


def training_flops_per_sample(model):
    """Forward + backward-weights + backward-data (all but the first layer), 2 FLOPs per MAC."""
    total = 0
    for i, layer in enumerate(GEOMETRY[model]):
        if layer[0] == 'lstm':
            # Four gates of W·x_t + U·h_{t-1} per step; backward-data always runs, for h_{t-1}.
            _, steps, fin, units = layer
            total += 2 * steps * (fin + units) * 4 * units * 3
            continue
        if layer[0] == 'conv':
            _, cin, cout, k, hw = layer
            macs = cin * cout * k * k * hw
        else:
            _, fin, fout = layer
            macs = fin * fout
        total += 2 * macs * (2 if i == 0 else 3)
    return total


def run_with_rss(cmd):
    """Runs cmd; returns its stdout and its peak RSS in MiB (os.wait4: this child's rusage)."""
    with tempfile.TemporaryFile(mode='w+') as out, tempfile.TemporaryFile(mode='w+') as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f'{" ".join(cmd)} failed ({proc.returncode}):\n{err.read()}')
        out.seek(0)
        return out.read(), usage.ru_maxrss / 1024.0


def value(text, key):
    m = re.search(rf'\b{key}=([0-9.eE+-]+)', text)
    if not m:
        sys.exit(f'no {key}= in output:\n{text}')
    return float(m.group(1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('model', choices=sorted(SPECS))
    p.add_argument('--steps', type=int, default=0, help='timed steps; default: per model')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--cajal', default=os.path.join(ROOT, 'build', 'bin', 'cajal'))
    p.add_argument('--sgemm-peak', default=os.path.join(ROOT, 'build', 'bin', 'sgemm_peak'))
    a = p.parse_args()
    a.steps = a.steps or DEFAULT_STEPS[a.model]
    flops = training_flops_per_sample(a.model)
    peak_cmd = [a.sgemm_peak, '--threads', str(a.threads)]
    out_dir = tempfile.mkdtemp()
    cajal_cmd = [a.cajal, 'train', '--spec', os.path.join(ROOT, SPECS[a.model]), '--out', out_dir,
                 '--set', 'training.epochs=1000', '--set', f'training.max_steps={a.steps}',
                 '--set', f'training.batch_size={a.batch}', '--set', f'training.threads={a.threads}']
    peer_cmd = ['/usr/bin/python3', PEER, 'throughput', a.model, '--batch', str(a.batch),
                '--threads', str(a.threads), '--steps', str(a.steps)]
    best = {'cajal': (0, 0), 'torch': (0, 0)}
    peak = 0.0
    for i in range(a.repeat):
        peak_out, _ = run_with_rss(peak_cmd)
        peak = max(peak, value(peak_out, 'sgemm_gflops'))
        print(f'run={i + 1} sgemm: gflops={value(peak_out, "sgemm_gflops"):.1f}')
        for name, cmd in (('torch', peer_cmd), ('cajal', cajal_cmd)):
            out, rss = run_with_rss(cmd)
            sps = value(out, 'samples_per_sec')
            print(f'run={i + 1} {name}: samples_per_sec={sps:.0f} peak_rss_mb={rss:.1f} '
                  f'gflops={sps * flops / 1e9:.1f}')
            prev = best[name]
            best[name] = (max(prev[0], sps), rss if prev[1] == 0 else min(prev[1], rss))
    (c_sps, c_rss), (t_sps, t_rss) = best['cajal'], best['torch']
    print(f'model={a.model} batch={a.batch} threads={a.threads} steps={a.steps} '
          f'cajal_samples_per_sec={c_sps:.0f} torch_samples_per_sec={t_sps:.0f} '
          f'speedup={c_sps / t_sps:.2f} cajal_peak_rss_mb={c_rss:.1f} torch_peak_rss_mb={t_rss:.1f} '
          f'rss_ratio={c_rss / t_rss:.2f}')
    c_gf, t_gf = c_sps * flops / 1e9, t_sps * flops / 1e9
    print(f'model={a.model} training_mflops_per_sample={flops / 1e6:.2f} sgemm_peak_gflops={peak:.1f} '
          f'cajal_gflops={c_gf:.1f} cajal_share_of_peak={c_gf / peak:.2f} '
          f'torch_gflops={t_gf:.1f} torch_share_of_peak={t_gf / peak:.2f}')


if __name__ == '__main__':
    main()
