"""The demo's model service and HTTP API: every task per image, refusals as messages, one model
for concurrent requests."""

from __future__ import annotations

import importlib
import io
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_up2
from up2core.demo.service import MAX_BYTES, RequestError, decode_image, describe


def _png(width=16, height=12, mode='RGB') -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), color=1 if mode == '1' else (200, 30, 30)).save(buffer, 'PNG')
    return buffer.getvalue()


def test_decode_image_reads_any_pil_format_as_bgr():
    array = decode_image(_png(), 'red.png')
    assert array.shape == (12, 16, 3) and array.dtype == np.uint8
    assert tuple(array[0, 0]) == (30, 30, 200)  # BGR, as the inference API reads files


def test_decode_image_turns_a_photo_as_the_camera_meant_it():
    """As training and `up2 infer` read files (OpenCV applies the EXIF orientation): a photo
    stored sideways with orientation 6 arrives upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.new('RGB', (40, 20), (200, 30, 30))
    stored.paste((30, 200, 30), (0, 0, 10, 20))  # the stored image's left edge is green
    buffer = io.BytesIO()
    stored.save(buffer, 'JPEG', exif=exif.tobytes(), quality=95)
    array = decode_image(buffer.getvalue(), 'photo.jpg')
    assert array.shape == (40, 20, 3)  # shown 20 wide, 40 high
    assert array[2, 10, 1] > 150 and array[-3, 10, 1] < 100  # the green edge is now the top


@pytest.mark.parametrize('data,status,message', [
    (b'', 400, "'x.png' is empty: choose an image file"),
    (b'%PDF-1.4 not an image', 400, "'x.png' is not an image PIL can read"),
    (b'\x89PNG' + b'0' * (MAX_BYTES + 1), 413, "'x.png' is 10.0 MiB; the demo takes images up "
                                               "to 10 MiB"),
    (_png(8000, 6000, mode='1'), 413, "'x.png' is 8000x6000 pixels; the demo takes up to 40 "
                                      "megapixels"),
])
def test_decode_image_refuses_with_a_message(data, status, message):
    with pytest.raises(RequestError) as caught:
        decode_image(data, 'x.png')
    assert caught.value.status == status
    assert str(caught.value).startswith(message)


def test_describe_decides_by_the_result_fields_not_the_task():
    regions = describe({'boxes': [[1, 2, 5, 6], [0, 0, 3, 3]], 'scores': [0.9, 0.1],
                        'classes': ['red star', 'blue circle'], 'labels': [0, 1]},
                       (8, 8), score_threshold=0.3)
    assert [(r['name'], r['score']) for r in regions['regions']] == [('red star', 0.9)]
    assert regions['best_score'] == 0.9 and 'mask_overlay' not in regions
    top = describe({'classes': list('abcdefg'), 'scores': [0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05]},
                   (8, 8), 0.3)
    assert [r['name'] for r in top['ranking']] == list('abcde')
    assert describe({'texts': ['x', 'y'], 'scores': [0.7, 0.3]}, (8, 8), 0.3)['ranking'][0] == \
        {'name': 'x', 'score': 0.7}
    assert describe({'caption': 'a red star.'}, (8, 8), 0.3) == {'caption': 'a red star.'}
    # a plugin's task with fields of its own is shown as JSON
    assert json.loads(describe({'count': 3}, (8, 8), 0.3)['json']) == {'count': 3}


@pytest.fixture(scope='module')
def service(tiny_generalist):
    from up2core.demo.service import DemoService

    # (the module, not the function up2core.apis exports under the same name)
    inference = importlib.import_module('up2core.apis.inference')

    config, checkpoint, _ = tiny_generalist
    calls = []
    original = inference.init_model

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    inference.init_model = counting
    try:
        demo = DemoService(str(config), str(checkpoint))
    finally:
        inference.init_model = original
    demo.init_calls = calls
    return demo


@pytest.mark.slow
def test_every_task_answers_with_its_time(service, tiny_generalist):
    image = decode_image((sorted(tiny_generalist[2].glob('*.png'))[0]).read_bytes())
    answer = service.predict(image, 'val.png', score_threshold=0.0)
    results = answer['results']
    assert set(results) == {'classification', 'detection', 'segmentation', 'captioning'}
    assert answer['skipped'] == {'retrieval': 'needs texts'}
    assert len(results['classification']['ranking']) == 5
    assert len(results['detection']['regions']) == 100  # threshold 0: every region
    assert results['segmentation']['mask_overlay'].startswith('data:image/png;base64,')
    assert isinstance(results['captioning']['caption'], str)
    assert all(r['ms'] > 0 for r in results.values()) and answer['timings_ms']['encoding'] > 0
    assert answer['image']['src'].startswith('data:image/png;base64,')
    texts = ['a red circle.', 'two blue squares.']
    ranked = service.predict(image, 'val.png', texts=texts, classes=['red circle'],
                             score_threshold=0.0)['results']
    assert sorted(r['name'] for r in ranked['retrieval']['ranking']) == sorted(texts)
    assert {r['name'] for r in ranked['detection']['regions']} == {'red circle'}
    assert set(service.examples) and all(e['captions'] for e in service.examples.values())


@pytest.mark.slow  # trains a model first (module fixture)
def test_the_page_says_what_the_model_was_trained_on(service):
    """The checkpoint's card (its data, names and val metrics) reaches the page's info."""
    info = service.info()
    assert info['card']['data']['name'] == 'shapes_generalist_e2e'
    assert info['card_lines'][0] == "Trained on 'shapes_generalist_e2e'"
    assert any(line.startswith('detection, segmentation know: red circle')
               for line in info['card_lines'])
    assert any(line.startswith('val after 4 iterations: classification/top1')
               for line in info['card_lines'])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@pytest.fixture(scope='module')
def server(service):
    import uvicorn

    from up2core.demo.app import server_config

    port = _free_port()
    running = uvicorn.Server(server_config(service, port=port, log_level='error'))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not running.started and time.time() < deadline:
        time.sleep(0.1)
    assert running.started
    yield f'http://127.0.0.1:{port}'
    running.should_exit = True
    thread.join(timeout=10)


def _post(url: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]] | None = None,
          extra_headers: dict | None = None, with_headers: bool = False):
    boundary = uuid.uuid4().hex
    body = b''
    for name, value in fields.items():
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                 f'{value}\r\n').encode()
    for name, (filename, data) in (files or {}).items():
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                 f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                 ).encode() + data + b'\r\n'
    body += f'--{boundary}--\r\n'.encode()
    headers = {'Content-Type': f'multipart/form-data; boundary={boundary}',
               **(extra_headers or {})}
    request = urllib.request.Request(url + '/api/predict', data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        answer = error.code, json.loads(error.read()), error.headers
    return answer if with_headers else answer[:2]


@pytest.mark.slow
def test_concurrent_requests_share_one_model(server, service):
    names = list(service.examples)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: _post(server, {'example': n, 'texts': 'a red circle'}),
                                names))
    assert [status for status, _ in answers] == [200] * len(names)
    assert [a['image']['name'] for _, a in answers] == names
    assert all('retrieval' in a['results'] for _, a in answers)
    assert len(service.init_calls) == 1  # loaded once, when the server was made
    with urllib.request.urlopen(server + '/') as page:
        assert b'Run every task' in page.read()


@pytest.mark.slow
def test_bad_requests_get_a_message_never_a_trace(server):
    cases = [
        ({}, None, 400, 'no image: drop or choose an image file, or pick an example'),
        ({}, {'image': ('notes.txt', b'hello')}, 400,
         "'notes.txt' is not an image PIL can read (PNG, JPEG, BMP, WebP, TIFF...)"),
        ({'example': 'nope.png'}, None, 404, "no example 'nope.png'; the examples are"),
        ({'example': '000000.png', 'score_threshold': 'high'}, None, 400,
         "score threshold 'high' is not a number"),
        ({}, {'image': ('big.png', b'0' * (MAX_BYTES + 2**17))}, 413,
         "'big.png' is 10.1 MiB; the demo takes images up to 10 MiB"),
    ]
    for fields, files, status, message in cases:
        code, answer = _post(server, fields, files)
        assert code == status, (fields, answer)
        assert set(answer) == {'error'} and answer['error'].startswith(message), answer
        assert 'Traceback' not in answer['error']


@pytest.mark.slow
def test_a_body_announced_far_over_the_limit_is_refused_unread(server):
    host, port = server.removeprefix('http://').split(':')
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(f'POST /api/predict HTTP/1.1\r\nHost: {host}:{port}\r\n'
                           f'Content-Type: multipart/form-data; boundary=x\r\n'
                           f'Content-Length: {50 * 2**20}\r\n\r\n'.encode())
        answer = b''
        while b'\r\n\r\n' not in answer or not answer.endswith(b'}'):  # headers and body
            chunk = connection.recv(65536)  # may come in separate segments
            if not chunk:
                break
            answer += chunk
        answer = answer.decode()
    assert answer.startswith('HTTP/1.1 413')
    assert '{"error":"the upload is 50.0 MiB; the demo takes images up to 10 MiB"}' in answer


def test_demo_cli_refuses_a_bad_port_in_one_line():
    result = run_up2('demo', 'up2_tiny_shapes_generalist', 'missing.pth', '--port', '70000')
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'up2: error: --port 70000: give a port from 1 to 65535']


def test_demo_cli_refuses_a_port_in_use_in_one_line_before_loading_the_model():
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_up2('demo', 'up2_tiny_shapes_generalist', 'missing.pth', '--port', str(port))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f'up2: error: cannot serve on 127.0.0.1:{port}: address already in use; pick another '
        f'--port (or --host)']


def test_demo_without_its_extra_names_the_extra_in_one_line(monkeypatch, capsys):
    from up2core import cli

    monkeypatch.setitem(sys.modules, 'fastapi', None)  # as if `up2[demo]` were not installed
    status = cli.main(['demo', 'up2_tiny_shapes_generalist', 'missing.pth'])
    assert status == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "up2: error: up2 demo needs the demo extra (fastapi is missing): pip install 'up2[demo]'"]


def test_serving_leaves_the_open_log_files_open(tmp_path, service):
    import logging

    from up2core.demo.app import server_config

    handler = logging.FileHandler(tmp_path / 'run.log')
    try:
        server_config(service, port=_free_port())
        assert handler.stream is not None and not handler.stream.closed
    finally:
        handler.close()


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header declares ``width`` x ``height`` pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))

    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b'\0' * (3 * width + 1) * 4)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', rows)
            + chunk(b'IEND', b''))


def _animated_gif(frames: int) -> bytes:
    pictures = [Image.new('P', (4, 4), color=i % 256) for i in range(frames)]
    buffer = io.BytesIO()
    pictures[0].save(buffer, 'GIF', save_all=True, append_images=pictures[1:], duration=10)
    return buffer.getvalue()


def _raw(server: str, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as is; the status and body of the answer."""
    host, port = server.removeprefix('http://').split(':')
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(request)
        answer = b''
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
            head, _, body = answer.partition(b'\r\n\r\n')
            length = [int(line.split(b':')[1]) for line in head.split(b'\r\n')
                      if line.lower().startswith(b'content-length:')]
            if length and len(body) >= length[0]:
                break
    head, _, body = answer.partition(b'\r\n\r\n')
    return int(head.split()[1]), body


@pytest.mark.slow
def test_hostile_uploads_get_a_4xx_with_a_message_and_the_server_keeps_serving(server):
    truncated = io.BytesIO()
    Image.effect_noise((200, 200), 60).convert('RGB').save(truncated, 'PNG')
    polyglot = _png(32, 24) + b'<html><script>alert(1)</script></html>'
    many = ','.join(f'name {i}' for i in range(301))
    cases = [  # (fields, files, status, the answer's start)
        ({}, {'image': ('bomb.png', _bomb_png(30000, 30000))}, 413,
         "'bomb.png' declares a size of over 178 megapixels; the demo takes up to 40"),
        ({}, {'image': ('big.png', _bomb_png(7000, 7000))}, 413,
         "'big.png' is 7000x7000 pixels; the demo takes up to 40 megapixels"),
        ({}, {'image': ('cut.png', truncated.getvalue()[:5000])}, 400,
         "'cut.png' is truncated: the file ends before the image does"),
        ({}, {'image': ('vector.png', b'<svg xmlns="http://www.w3.org/2000/svg"><script>'
                                      b'alert(1)</script></svg>')}, 400,
         "'vector.png' is not an image PIL can read"),
        ({}, {'image': ('page.png', b'<!DOCTYPE html><html><body>hi</body></html>')}, 400,
         "'page.png' is not an image PIL can read"),
        ({'example': '000000.png', 'classes': many}, None, 400,
         "'classes' gives 301 names; the demo takes up to 300 per request"),
        ({'example': '000000.png', 'texts': '\n'.join(['a red circle'] * 10000)}, None, 413,
         "'texts' is 129999 characters; the demo takes up to 300 names"),
        ({'example': '000000.png', 'classes': 'x' * 201}, None, 400,
         "'classes' has a name of 201 characters; the demo takes names of up to 200"),
        ({'example': '000000.png', 'texts': 'a' * (2 * 2**20)}, None, 413,
         'a form field is larger than the form parser takes'),
        ({'example': '../../../../etc/passwd'}, None, 404,
         "no example '../../../../etc/passwd'; the examples are"),
    ]
    for fields, files, status, message in cases:
        code, answer = _post(server, fields, files)
        assert code == status, (message, answer)
        assert set(answer) == {'error'} and answer['error'].startswith(message), answer
    # a real PNG with a page appended is answered as the image it is; what comes back is
    # re-encoded from its pixels, never the bytes sent
    code, answer = _post(server, {}, {'image': ('poly.png', polyglot)})
    assert code == 200 and (answer['image']['width'], answer['image']['height']) == (32, 24)
    import base64
    sent_back = base64.b64decode(answer['image']['src'].split(',', 1)[1])
    assert sent_back.startswith(b'\x89PNG') and b'<script>' not in sent_back
    # thousands of frames: the first is the image
    code, answer = _post(server, {}, {'image': ('anim.gif', _animated_gif(3000))})
    assert code == 200 and answer['image']['width'] == 4
    # bodies that are not forms, or broken ones
    port = server.rsplit(':', 1)[1]
    for content_type, body in [('multipart/form-data; boundary=x', b''),
                               ('multipart/form-data; boundary=x', b'--x\r\nnonsense'),
                               ('multipart/form-data', b'no boundary at all'),
                               ('application/json', b'{"image": 1}')]:
        status, text = _raw(server, (f'POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n'
                                     f'Content-Type: {content_type}\r\n'
                                     f'Content-Length: {len(body)}\r\nConnection: close\r\n\r\n'
                                     ).encode() + body)
        assert 400 <= status < 500, (content_type, body, status, text)
        assert 'error' in json.loads(text), text
    status, text = _raw(server, f'GET /api/examples/..%2F..%2F..%2Fetc%2Fpasswd HTTP/1.1\r\n'
                                f'Host: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n'.encode())
    assert status == 404 and b'root:' not in text
    # ... and it still serves
    assert _post(server, {'example': '000000.png'})[0] == 200


@pytest.mark.slow
def test_other_sites_and_other_host_names_are_refused(server):
    port = server.rsplit(':', 1)[1]
    example = {'example': '000000.png'}
    for headers in ({'Origin': 'http://evil.example'}, {'Origin': 'null'},
                    {'Origin': f'http://localhost:{port}'},  # another origin than the Host
                    {'Sec-Fetch-Site': 'cross-site'}):
        code, answer = _post(server, example, extra_headers=headers)
        assert code == 403 and answer['error'].startswith('refused: '), (headers, answer)
    for host in ('evil.example', f'evil.example:{port}', '127.0.0.1:1'):  # DNS rebinding
        code, answer = _post(server, example, extra_headers={'Host': host})
        assert code == 403 and answer['error'].startswith(f"host '{host}' is not this demo")
        status, _ = _raw(server, f'GET /api/info HTTP/1.1\r\nHost: {host}\r\n'
                                 f'Connection: close\r\n\r\n'.encode())
        assert status == 403
    # its own page, and clients that are not browsers
    assert _post(server, example, extra_headers={'Origin': server,
                                                 'Sec-Fetch-Site': 'same-origin'})[0] == 200
    assert _post(server, example, extra_headers={'Host': f'localhost:{port}'})[0] == 200


def test_the_host_check_accepts_exactly_the_served_names():
    from up2core.demo.app import allowed_hosts, host_allowed

    names = allowed_hosts('127.0.0.1')
    assert host_allowed('127.0.0.1:7860', names, 7860)
    assert host_allowed('LOCALHOST:7860', names, 7860) and host_allowed('[::1]:7860', names, 7860)
    assert not host_allowed('127.0.0.1:7861', names, 7860)
    assert not host_allowed('evil.example:7860', names, 7860)
    assert not host_allowed('127.0.0.1.evil.example:7860', names, 7860)
    assert not host_allowed('', names, 7860)
    assert host_allowed('localhost', names, 80) and not host_allowed('localhost', names, 7860)
    assert host_allowed('[fe80::1]:8000', allowed_hosts('fe80::1'), 8000)
    assert allowed_hosts('0.0.0.0') is None and host_allowed('anything:1', None, 7860)


@pytest.mark.slow
def test_a_request_past_the_queue_is_told_the_demo_is_busy(server, service):
    service.max_waiting = 1
    service._lock.acquire()  # the model is busy with someone else's image
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(_post, server, {'example': '000000.png'})
            deadline = time.time() + 30
            while service._waiting < 1 and time.time() < deadline:
                time.sleep(0.01)
            code, answer, headers = _post(server, {'example': '000000.png'}, with_headers=True)
            assert code == 503 and answer['error'].startswith(
                'the demo is busy: 1 requests are waiting for the model; try again in about ')
            assert int(headers['Retry-After']) >= 1
            service._lock.release()
            assert first.result(timeout=120)[0] == 200  # the one that queued is answered
    finally:
        if service._lock.locked():
            service._lock.release()
        service.max_waiting = 8
