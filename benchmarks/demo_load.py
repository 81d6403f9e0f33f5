"""The demo server under concurrent users: throughput, latency, errors and memory.

    python benchmarks/demo_load.py CHECKPOINT [--config up2_tiny_shapes_generalist]
        [--clients 1 4 16] [--seconds 60] [--label NAME]

Starts ``up2 demo CONFIG CHECKPOINT`` on a free port of 127.0.0.1 (a separate process, as a
user runs it), waits until it answers, then for each client count runs that many clients for
``--seconds``: each client posts, one after another, an image taken in turn from real photos
(scikit-image's astronaut, coffee, chelsea, rocket: 300-600 px JPEGs) and Shapes val images
(128 px PNGs), with candidate captions, so every task runs.  Recorded per client count:

* requests answered (200), refused as busy (503 with ``Retry-After``: more than
  ``MAX_WAITING`` requests already queued; a client that is told so waits the seconds it is
  told), and errors (any other status, a connection failure or a timeout: the target is 0);
* throughput (answers per second) and the latency of answered requests (p50, p95, max);
* the server's resident memory (``/proc/PID/status``): at the start of the run, at the end and
  its peak (sampled every 0.2 s).

Then the server is stopped.  JSON goes to ``benchmarks/results/demo_load[_LABEL].json`` and a
table is printed.  Run it on an idle machine: the clients and the server share its cores.  A
measurement, never asserted in tests (the behaviour under load is: tests/demo).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXTS = 'a small red circle.\ntwo blue squares.\na green star at the top.'


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _images(shapes_val: Path) -> list[tuple[str, bytes]]:
    """Real photos as JPEG bytes and Shapes val images as PNG bytes, interleaved."""
    import skimage.data
    from PIL import Image

    photos = []
    for name in ('astronaut', 'coffee', 'chelsea', 'rocket'):
        buffer = io.BytesIO()
        Image.fromarray(getattr(skimage.data, name)()).convert('RGB').save(buffer, 'JPEG',
                                                                          quality=90)
        photos.append((f'{name}.jpg', buffer.getvalue()))
    shapes = [(path.name, path.read_bytes()) for path in sorted(shapes_val.glob('*.png'))[:4]]
    if not shapes:
        raise SystemExit(f'no Shapes val images in {shapes_val}: run `up2 data shapes` or the '
                         f'main job first')
    return [image for pair in zip(photos, shapes) for image in pair]


def _post(url: str, name: str, data: bytes, timeout: float) -> tuple[int, dict, float]:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="texts"\r\n\r\n{TEXTS}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"'
            f'\r\nContent-Type: application/octet-stream\r\n\r\n').encode() + data + \
        f'\r\n--{boundary}--\r\n'.encode()
    request = urllib.request.Request(url + '/api/predict', data=body, headers={
        'Content-Type': f'multipart/form-data; boundary={boundary}'})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
            return response.status, answer, time.perf_counter() - start
    except urllib.error.HTTPError as error:
        retry = float(error.headers.get('Retry-After') or 0)
        return error.code, {'retry_after': retry}, time.perf_counter() - start


def _rss_mib(pid: int) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    return float('nan')


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float('nan')
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load(url: str, pid: int, images: list[tuple[str, bytes]], clients: int, seconds: float,
         timeout: float) -> dict:
    """``clients`` threads posting for ``seconds``; what they got, and the server's memory."""
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {'answered': 0, 'busy': 0, 'errors': 0}
    errors: list[str] = []
    stop = time.perf_counter() + seconds
    rss = [_rss_mib(pid)]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.2):
            rss.append(_rss_mib(pid))

    def client(index: int) -> None:
        turn = index
        while time.perf_counter() < stop:
            name, data = images[turn % len(images)]
            turn += clients
            try:
                status, answer, seconds_taken = _post(url, name, data, timeout)
            except Exception as exc:  # noqa: BLE001 - a refused connection or a timeout
                with lock:
                    counts['errors'] += 1
                    errors.append(f'{type(exc).__name__}: {exc}')
                continue
            with lock:
                if status == 200 and 'results' in answer:
                    counts['answered'] += 1
                    latencies.append(seconds_taken)
                elif status == 503:
                    counts['busy'] += 1
                else:
                    counts['errors'] += 1
                    errors.append(f'status {status}: {answer}')
            if status == 503:
                time.sleep(min(answer.get('retry_after') or 1.0, max(0.0, stop -
                                                                      time.perf_counter())))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    sampling.set()
    sampler.join()
    rss.append(_rss_mib(pid))
    return {'clients': clients, 'seconds': round(wall, 1), **counts,
            'throughput_per_s': round(counts['answered'] / wall, 3),
            'p50_s': round(_percentile(latencies, 0.5), 3),
            'p95_s': round(_percentile(latencies, 0.95), 3),
            'max_s': round(max(latencies), 3) if latencies else float('nan'),
            'rss_start_mib': round(rss[0], 1), 'rss_end_mib': round(rss[-1], 1),
            'rss_peak_mib': round(max(rss), 1), 'error_examples': errors[:5]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint')
    parser.add_argument('--config', default='up2_tiny_shapes_generalist')
    parser.add_argument('--clients', type=int, nargs='+', default=[1, 4, 16])
    parser.add_argument('--seconds', type=float, default=60.0)
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='a request unanswered after this many seconds is an error')
    parser.add_argument('--shapes-val', default=str(ROOT / 'data' / 'shapes' / 'images' / 'val'))
    parser.add_argument('--label', default='')
    args = parser.parse_args()

    images = _images(Path(args.shapes_val))
    port = _free_port()
    up2 = Path(sys.executable).with_name('up2')
    log = tempfile.NamedTemporaryFile('w+', prefix='up2-demo-load-', suffix='.log')
    server = subprocess.Popen([str(up2), 'demo', args.config, args.checkpoint, '--port',
                               str(port)], stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 300
        while True:
            try:
                with urllib.request.urlopen(url + '/api/info', timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.time() > deadline:
                    log.seek(0)
                    raise SystemExit('the demo did not start:\n' + log.read()[-3000:]) from None
                time.sleep(0.5)
        _post(url, *images[0], args.timeout)  # warm-up: candidate encodings, allocators
        rows = []
        for clients in args.clients:
            row = load(url, server.pid, images, clients, args.seconds, args.timeout)
            row['server_alive'] = server.poll() is None
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    result = {'config': args.config, 'checkpoint': args.checkpoint,
              'images': [name for name, _ in images], 'seconds_per_run': args.seconds,
              'machine': {'cpus': os.cpu_count(), 'platform': platform.platform(),
                          'torch_threads': 'default'},
              'date': time.strftime('%Y-%m-%d'), 'rows': rows}
    name = f'demo_load_{args.label}.json' if args.label else 'demo_load.json'
    out = ROOT / 'benchmarks' / 'results' / name
    out.write_text(json.dumps(result, indent=2) + '\n')
    print()
    print(table(rows))
    print(f'\n{out}')


def table(rows: list[dict]) -> str:
    lines = ['| clients | answered | busy (503) | errors | answers/s | p50 (s) | p95 (s) | '
             'max (s) | server RSS start -> end, peak (MiB) |',
             '|---:|---:|---:|---:|---:|---:|---:|---:|---|']
    for r in rows:
        lines.append(f"| {r['clients']} | {r['answered']} | {r['busy']} | {r['errors']} | "
                     f"{r['throughput_per_s']:.2f} | {r['p50_s']:.2f} | {r['p95_s']:.2f} | "
                     f"{r['max_s']:.2f} | {r['rss_start_mib']:.0f} -> {r['rss_end_mib']:.0f}, "
                     f"{r['rss_peak_mib']:.0f} |")
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
