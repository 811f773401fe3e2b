#!/usr/bin/env python3
"""cajal's CUDA backend against its CPU backend and PyTorch CUDA, measured in the same run.

  bench/gpu_bench.py [--build build] [--models mlp,cnn,lstm] [--batches 64,256]
                     [--gpu-steps 500] [--cpu-steps 60] [--torch-steps 500]

For each model (examples/mlp.yaml, cnn.yaml, lstm.yaml: Fashion-MNIST, Adam 1e-3) and batch:
  cajal gpu   `cajal train --set training.device=gpu --set training.max_steps=N ...`
  cajal cpu   the same with training.device=cpu (all the machine's cores)
  torch cuda  the same network, optimizer and batch in PyTorch on the GPU, when `import torch`
              finds CUDA (TF32 off on both sides: FP32 arithmetic, as cajal's GPU backend)
and prints samples/s, the ratios, and each side's achieved GFLOP/s (vs_torch.py's FLOP count
of a training step) against the cuBLAS SGEMM peak `build/bin/cublas_sgemm_peak` measured in
the same run. samples/s counts training steps only (batch gather and upload, forward, loss,
backward, update), as `cajal train` prints it; PyTorch's loop times the same work: a batch
gathered from host tensors, copied to the GPU, forward, loss, backward, Adam.

The runs never overlap. The last line is a one-line summary for scripts/gpu-check.sh.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))
from vs_torch import training_flops_per_sample  # noqa: E402

SPECS = {'mlp': 'examples/mlp.yaml', 'cnn': 'examples/cnn.yaml', 'lstm': 'examples/lstm.yaml'}


def cajal_samples_per_sec(build, model, batch, device, steps):
    with tempfile.TemporaryDirectory() as out:
        cmd = [os.path.join(build, 'bin', 'cajal'), 'train', '--spec',
               os.path.join(ROOT, SPECS[model]), '--out', out,
               '--set', 'training.device=' + device, '--set', 'training.batch_size=%d' % batch,
               '--set', 'training.max_steps=%d' % steps, '--set', 'training.epochs=1']
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError('%s failed (exit %d): %s' % (' '.join(cmd), r.returncode,
                                                            r.stderr.strip()[-2000:]))
        m = re.search(r'samples_per_sec=([0-9.]+)', r.stdout)
        if not m:
            raise RuntimeError('no samples_per_sec in: ' + r.stdout[-500:])
        return float(m.group(1))


def torch_samples_per_sec(model, batch, steps):
    """PyTorch CUDA on random Fashion-MNIST-shaped data, or None when there is no CUDA torch."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(1)
    dev = torch.device('cuda')

    class Lstm(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(28, 128, batch_first=True)
            self.out = nn.Linear(128, 10)

        def forward(self, x):
            y, _ = self.lstm(x.view(-1, 28, 28))
            return self.out(y[:, -1])

    if model == 'mlp':
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128),
                            nn.ReLU(), nn.Linear(128, 10))
    elif model == 'cnn':
        net = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(64 * 7 * 7, 1024), nn.ReLU(),
                            nn.Linear(1024, 10))
    else:
        net = Lstm()
    net = net.to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    images = torch.rand(60000, 1, 28, 28).pin_memory()
    labels = torch.randint(0, 10, (60000,)).pin_memory()

    def step(i):
        idx = torch.randint(0, 60000, (batch,))
        x = images[idx].to(dev, non_blocking=True)
        y = labels[idx].to(dev, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    for i in range(20):  # warm-up: cuDNN and cuBLAS plans, allocator
        step(i)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def sgemm_peak(build):
    tool = os.path.join(build, 'bin', 'cublas_sgemm_peak')
    r = subprocess.run([tool], capture_output=True, text=True)
    m = re.search(r'sgemm_gflops=([0-9.]+)', r.stdout)
    if r.returncode != 0 or not m:
        raise RuntimeError('%s failed: %s' % (tool, (r.stdout + r.stderr).strip()))
    return float(m.group(1)), r.stdout.strip()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--build', default=os.path.join(ROOT, 'build'))
    p.add_argument('--models', default='mlp,cnn,lstm')
    p.add_argument('--batches', default='64,256')
    p.add_argument('--gpu-steps', type=int, default=500)
    p.add_argument('--cpu-steps', type=int, default=60)
    p.add_argument('--torch-steps', type=int, default=500)
    a = p.parse_args()
    peak, peak_line = sgemm_peak(a.build)
    print('cuBLAS SGEMM peak: ' + peak_line)
    print('%-5s %5s %12s %12s %12s %9s %9s %10s %10s' % (
        'model', 'batch', 'cajal_gpu/s', 'cajal_cpu/s', 'torch_gpu/s', 'gpu/cpu', 'gpu/torch',
        'gpu_GF/s', 'torch_GF/s'))
    summary = []
    for model in a.models.split(','):
        flops = training_flops_per_sample(model)
        for batch in (int(b) for b in a.batches.split(',')):
            gpu = cajal_samples_per_sec(a.build, model, batch, 'gpu', a.gpu_steps)
            cpu = cajal_samples_per_sec(a.build, model, batch, 'cpu', a.cpu_steps)
            torch_sps = torch_samples_per_sec(model, batch, a.torch_steps)
            vs_torch = '%9.2f' % (gpu / torch_sps) if torch_sps else '%9s' % '-'
            torch_col = '%12.0f' % torch_sps if torch_sps else '%12s' % '-'
            torch_gf = '%10.0f' % (torch_sps * flops / 1e9) if torch_sps else '%10s' % '-'
            print('%-5s %5d %12.0f %12.0f %s %9.2f %s %10.0f %s' % (
                model, batch, gpu, cpu, torch_col, gpu / cpu, vs_torch, gpu * flops / 1e9,
                torch_gf))
            sys.stdout.flush()
            summary.append('%s/%d gpu=%.0f cpu=%.0f torch=%s' % (
                model, batch, gpu, cpu, '%.0f' % torch_sps if torch_sps else '-'))
    print('GFLOP/s columns: samples/s x training FLOPs per sample (vs_torch.py); SGEMM peak %.0f '
          'GFLOP/s' % peak)
    print('summary: sgemm_gflops=%.0f ' % peak + ' '.join(summary))


if __name__ == '__main__':
    main()
