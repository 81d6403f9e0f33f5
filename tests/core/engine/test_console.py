"""The console shows progress and warnings a user can act on; the log file keeps everything."""

import io
import logging

from up2core.engine.console import VERBOSE_ENV, ConsoleProgressHook, quiet_console


def _logger(tmp_path, name):
    logger = logging.getLogger(f'up2-test-{name}')
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    console = io.StringIO()
    logger.addHandler(logging.StreamHandler(console))
    logger.addHandler(logging.FileHandler(tmp_path / f'{name}.log'))
    return logger, console, tmp_path / f'{name}.log'


def test_info_and_unactionable_warnings_go_to_the_file_only(tmp_path, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    logger, console, log = _logger(tmp_path, 'quiet')
    quiet_console(logger)
    logger.info('Config:\nmodel = dict(...)')
    logger.warning('image_encoder.backbone.stem.weight is skipped since its requires_grad=False')
    logger.warning('the val set has no image with captions')
    for handler in logger.handlers:
        handler.flush()
    assert console.getvalue() == 'the val set has no image with captions\n'
    text = log.read_text()
    assert 'Config:' in text and 'requires_grad=False' in text and 'no image' in text


def test_verbose_keeps_mmengines_console(tmp_path, monkeypatch):
    monkeypatch.setenv(VERBOSE_ENV, '1')
    logger, console, _ = _logger(tmp_path, 'verbose')
    quiet_console(logger)
    logger.info('Config:')
    assert 'Config:' in console.getvalue()


class _Hub:
    def __init__(self, loss):
        self.loss = loss

    def get_scalar(self, key):
        hub = self

        class _Scalar:
            def current(self):
                return hub.loss
        return _Scalar() if key == 'train/loss' else None


class _Runner:
    rank, iter, max_iters, log_dir = 0, 0, 20, 'work/log'
    logger = None

    def __init__(self):
        self.message_hub = _Hub(2.5)


def test_a_line_per_tenth_of_training_with_loss_and_eta(capsys, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    hook, runner = ConsoleProgressHook(lines=4), _Runner()
    hook.before_train(runner)
    for step in range(20):
        runner.iter = step
        hook.after_train_iter(runner, step)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith('up2: train: 20 steps from step 0')
    progress = [line for line in lines if line.startswith('up2: train [')]
    assert [line.split(']')[0] for line in progress] == [
        'up2: train [ 5/20', 'up2: train [10/20', 'up2: train [15/20', 'up2: train [20/20']
    assert 'loss 2.500' in progress[0] and progress[-1].endswith('eta 0:00:00')
