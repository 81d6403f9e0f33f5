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


class _Loader:
    current = 'captioning'

    def __len__(self):
        return 4


class _Loop:
    shared_images = False
    dataloader = _Loader()


def test_evaluation_and_test_lines_name_the_phase_and_task(capsys, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    hook, runner = ConsoleProgressHook(lines=2), _Runner()
    runner.val_loop = runner.test_loop = _Loop()
    for stage, word in (('val', 'evaluate'), ('test', 'test')):
        getattr(hook, f'before_{stage}_epoch')(runner)
        for batch in range(4):
            getattr(hook, f'before_{stage}_iter')(runner, batch)
            getattr(hook, f'after_{stage}_iter')(runner, batch)
        getattr(hook, f'after_{stage}_epoch')(runner)
        lines = capsys.readouterr().err.splitlines()
        assert [line.split(']')[0] for line in lines[:2]] == [
            f'up2: {word} captioning [2/4 batches', f'up2: {word} captioning [4/4 batches']
        assert lines[2].startswith(f'up2: {word}: done in ')
