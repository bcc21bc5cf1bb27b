"""The command line: fast help (no heavy imports), shared options, progress only on a tty."""

from __future__ import annotations

import argparse
import errno
import io
import json
import logging
import re
import shutil
import subprocess
import sys

import pytest

from conftest import warning_lines
from vsent.cli import _missing_path_hint, build_parser, main
from vsent.cli.common import folds_arg, init_arg, progress_enabled, typed_options
from vsent.errors import VsentError
from vsent.presets import CROSSVAL as CROSSVAL_PRESETS
from vsent.runs import _RunLog

HEAVY = ("torch", "torchvision", "numpy", "cv2", "matplotlib", "sklearn", "PIL", "tqdm",
         "fastapi", "timm", "open_clip")


def _modules_after(code: str) -> set[str]:
    """Top-level modules a fresh interpreter has loaded after running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.split("\n")[-2]
    return {m.split(".")[0] for m in out.split()}


@pytest.mark.parametrize("argv", [[], ["crossval"], ["layers"], ["pcnn-transfer"]])
def test_help_imports_no_heavy_module(argv):
    code = ("from vsent.cli import main\n"
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        main({[*argv, '--help']!r})\n"
            "    except SystemExit:\n"
            "        pass")
    loaded = _modules_after(code)
    assert "vsent" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_no_commands_help_imports_a_heavy_module():
    """Every command's --help, one after the other in one interpreter (mut47c: the test above
    covers four): a heavy import at a command's help would be loaded by the end."""
    names = sorted(_subparsers())
    assert {"crossval", "finetune", "models", "pcnn-transfer", "serve"} <= set(names)
    code = ("from vsent.cli import main\n"
            "import contextlib, io\n"
            f"for name in {names!r}:\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try:\n"
            "            main([name, '--help'])\n"
            "        except SystemExit as e:\n"
            "            assert e.code == 0, name")
    loaded = _modules_after(code)
    assert "vsent" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def test_every_option_a_help_names_is_one_of_its_command():
    """trial41 F8: baselines' --resume help offered --device, which baselines refuses (it has
    --jobs): each option named in a command's help texts is one of that command's."""
    for name, sub in _subparsers().items():
        opts = {o for a in sub._actions for o in a.option_strings}
        for action in sub._actions:
            named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", action.help or ""))
            assert named <= opts, (name, action.dest, named - opts)


@pytest.mark.parametrize("command", ["crossval", "finetune", "pcnn", "pcnn-transfer",
                                     "regions", "baselines", "layers", "explain"])
def test_run_options_are_the_shared_ones(command):
    opts = {o for a in _subparsers()[command]._actions for o in a.option_strings}
    assert {"--out", "--overwrite", "--no-progress"} <= opts
    resumable = command not in ("layers", "explain")  # these two continue / are cheap to redo
    assert ("--resume" in opts) == resumable
    # and only those the command has use for (mut60d M71, M73, M74): explain draws nothing at
    # random, baselines runs on --jobs CPU workers, pcnn trains on all its weakly labelled images
    assert ("--seed" in opts) == (command != "explain")
    assert ("--device" in opts) == (command != "baselines")
    assert ("--folds" in opts) == (command not in ("pcnn", "layers", "explain"))


def test_every_device_option_takes_the_one_list_of_devices():
    """code38 #15: serve wrote its own ("auto", "cpu", "cuda"); a device added to
    cli.common.DEVICES would not have reached it."""
    from vsent.cli.common import DEVICES

    devices = {name: a.choices for name, p in _subparsers().items() for a in p._actions
               if "--device" in a.option_strings}
    assert {"predict", "serve", "explain", "crossval"} <= set(devices)
    assert [n for n, c in devices.items() if c is not DEVICES] == []


@pytest.fixture(scope="module")
def tiny_cpu_run(tmp_path_factory):
    """A 1-epoch crossval run on the Twitter-like test data: (data, run)."""
    from conftest import build_twitter_like

    root = tmp_path_factory.mktemp("cpu_run")
    data = build_twitter_like(root / "tw")
    run = root / "run"
    assert main(["crossval", "--preset", "quick", "--data", str(data), "--out", str(run),
                 "--epochs", "1", "--device", "cpu", "--no-progress"]) == 0
    return data, run


@pytest.mark.parametrize("command", ["crossval", "finetune", "pcnn", "pcnn-transfer", "layers",
                                     "regions", "predict", "explain"])
def test_device_cuda_without_a_gpu_stops_before_anything_is_written(command, tiny_cpu_run,
                                                                    tmp_path, monkeypatch,
                                                                    capsys):
    """walk42 #2: crossval, pcnn, pcnn-transfer and layers loaded the data, logged their
    first lines and wrote a run directory before saying that there is no GPU (predict and
    serve said it first)."""
    import torch

    data, run = tiny_cpu_run
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    capsys.readouterr()
    image = next((data / "images").iterdir())
    ckpt = run / "fold1" / "model.pt"
    args = {"crossval": ["--preset", "quick", "--data", str(data), "--epochs", "1"],
            "finetune": ["--preset", "quick", "--data", str(data), "--epochs", "1"],
            "pcnn": ["--data", str(data), "--epochs", "1"],
            "pcnn-transfer": ["--model", str(ckpt), "--data", str(data)],
            "layers": ["--run", str(run)], "regions": ["--run", str(run)],
            "predict": ["--model", str(ckpt), str(image)],
            "explain": ["--model", str(ckpt), str(image)]}[command]
    out = tmp_path / "out"
    assert main([command, *args, "--out", str(out), "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "vsent: error: --device cuda: no CUDA device is available here (use " \
                      "--device cpu)"
    # nothing loaded before it (regions warns of what it read of the run: an image in no fold)
    assert len(err) == 1 or (command == "regions" and "in no test fold" in err[0]), err
    assert not out.exists()


def test_device_cuda_without_a_gpu_still_shows_a_finished_run(tiny_cpu_run, monkeypatch,
                                                               capsys):
    """A run trained elsewhere (on a GPU) is shown here: showing it needs no device (review42
    F2: the early check refused it)."""
    import torch

    data, run = tiny_cpu_run
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["crossval", "--preset", "quick", "--data", str(data), "--out", str(run),
                 "--epochs", "1", "--device", "cuda", "--no-progress"]) == 0
    assert f"results in {run}/summary.md" in capsys.readouterr().out
    # --overwrite would train again: said before the finished run is emptied
    before = sorted(p.name for p in run.iterdir())
    assert main(["crossval", "--preset", "quick", "--data", str(data), "--out", str(run),
                 "--epochs", "1", "--device", "cuda", "--overwrite", "--no-progress"]) == 2
    assert capsys.readouterr().err.endswith("no CUDA device is available here (use --device "
                                            "cpu)\n")
    assert sorted(p.name for p in run.iterdir()) == before and (run / "summary.json").is_file()


@pytest.mark.parametrize("command", ["crossval", "finetune", "pcnn", "baselines", "regions"])
def test_resume_and_overwrite_exclude_each_other(command, capsys):
    # --overwrite would delete the run that --resume asks to continue
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([command, "--resume", "--overwrite"])
    assert e.value.code == 2
    assert "argument --overwrite: not allowed with argument --resume" in capsys.readouterr().err


def test_options_are_never_abbreviated(capsys):
    # crossval has --folds and no --fold: "--fold 1" must not be read as "--folds 1"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["crossval", "--fold", "1"])
    assert "unrecognized arguments: --fold 1" in capsys.readouterr().err
    assert build_parser().parse_args(["crossval", "--folds", "stratified"]).folds == "stratified"
    # vsent's main says it with the command's usage line (audit_readme28 #6), exit 2
    with pytest.raises(SystemExit) as e:
        main(["crossval", "--epoch", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage: vsent crossval ")
    assert err.endswith("vsent crossval: error: unrecognized arguments: --epoch 1\n")
    # nor vsent's own: "--vers" is no --version (mut51a)
    with pytest.raises(SystemExit) as e:
        main(["--vers"])
    out, err = capsys.readouterr()
    assert (e.value.code, out) == (2, "")
    assert err.endswith("vsent: error: the following arguments are required: COMMAND\n")


@pytest.mark.parametrize("command", [["crossval"], ["baselines"], ["pcnn"],
                                     ["pcnn-transfer", "--model", "m.pt"],
                                     ["reproduce", "campos2015"]])
def test_data_is_recorded_as_an_absolute_path(command, tmp_path, monkeypatch):
    # a run's config.json must name its data from any directory (regions, --resume elsewhere)
    import os

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VSENT_DATA", raising=False)
    args = build_parser().parse_args([*command, "--data", "../d/./tw"])
    # '..' as the file system takes it: the run's record does not depend on the name of the
    # folder it was run from (trial41 F4: <cwd>/../d/tw broke when cwd was renamed)
    assert args.data == os.path.join(tmp_path.parent, "d", "tw")
    if command[0] != "pcnn":  # pcnn's --data is required; the others default to the dataset
        default = build_parser().parse_args(command).data
        assert os.path.isabs(default) and default.endswith(os.path.join("datasets", "twitter1"))
        # $VSENT_DATA, when set, is the default (as --help says), recorded absolute too
        monkeypatch.setenv("VSENT_DATA", "tw1")
        assert build_parser().parse_args(command).data == os.path.join(os.getcwd(), "tw1")


def test_help_defaults_are_those_of_the_analyses():
    from vsent.analyses import baselines, explain, fusion, fusion_run, probes, proposals, regions
    from vsent.cli import baselines as cli_baselines
    from vsent.cli import common
    from vsent.cli import explain as cli_explain
    from vsent.cli import fuse as cli_fuse
    from vsent.cli import layers as cli_layers
    from vsent.cli import regions as cli_regions
    from vsent.data.datasets import SUBSETS

    r, p = regions.RegionConfig(), proposals.ProposalConfig()
    expected = {"n_proposals": p.n_proposals, "max_side": p.max_side,
                "min_box_area": p.min_box_area, "k": r.k, "k_max": r.k_max, "alpha": r.alpha,
                "beta": r.beta, "overlays": r.overlays, "batch_size": r.batch_size}
    assert expected == cli_regions.HELP_DEFAULTS
    # predict --regions and the service rank as `vsent regions` does by default (review31 #4:
    # predict took the first of SENTI_LOGS, and a resume trusts that default)
    from vsent.cli.predict import REGION_DEFAULTS
    from vsent.serve import ServeConfig

    assert {k: REGION_DEFAULTS[k] for k in ("n_proposals", "k", "alpha", "beta")} == \
        {k: expected[k] for k in ("n_proposals", "k", "alpha", "beta")}
    assert REGION_DEFAULTS["senti_log"] == r.senti_log == ServeConfig().senti_log
    s = ServeConfig()
    assert (s.k, s.alpha, s.beta, s.n_proposals) == (r.k, r.alpha, r.beta, p.n_proposals)
    assert cli_layers.CLASSIFIERS == probes.CLASSIFIERS
    assert cli_layers.DEFAULT_CS == probes.DEFAULT_CS
    assert cli_baselines.FEATURE_SETS == baselines.FEATURE_SETS
    assert cli_explain.TARGETS == explain.TARGETS
    assert cli_explain.DEFAULT_MAX_SIDE == explain.DEFAULT_MAX_SIDE
    assert (cli_fuse.RUN_RULES, cli_fuse.METHODS, cli_fuse.DEFAULT_WEIGHT, cli_fuse.INNER,
            cli_fuse.INNER_SPLITS) == (fusion_run.RUN_RULES, fusion.METHODS,
                                       fusion.DEFAULT_WEIGHT, fusion_run.INNER,
                                       fusion_run.INNER_SPLITS)
    assert common.SUBSETS == SUBSETS


def _option_help(command: str, option: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return next(a.help for a in sub.choices[command]._actions if option in a.option_strings)


def test_help_texts_name_every_block_preset_and_surgery():
    """The lists the parser spells out (it imports no torch) hold what the code accepts:
    fusion blocks (config's = the baselines' + fusion's own, extend43 #4/#5: a block named in
    config alone passed validation, then failed after making --out), the blocks a saved model
    carries, every preset (#13) and CaffeNet surgery (#14)."""
    from vsent.analyses import baselines, fused_model, fusion_run
    from vsent.config import FUSION_BLOCKS, SAVED_FUSION_BLOCKS
    from vsent.models.caffenet import SURGERIES
    from vsent.presets import CROSSVAL, PCNN

    assert set(FUSION_BLOCKS) == set(baselines.BLOCKS) | set(fusion_run.FUSION_ONLY_BLOCKS)
    # each of fusion's own blocks has the function that makes it (extend43b #8: a name alone
    # passed, wrote --out's records, then failed as an "unknown feature set")
    assert tuple(fusion_run._FUSION_ONLY) == fusion_run.FUSION_ONLY_BLOCKS
    assert not set(baselines.BLOCKS) & set(fusion_run.FUSION_ONLY_BLOCKS)
    assert fused_model.SAVED_BLOCKS == SAVED_FUSION_BLOCKS
    assert set(SAVED_FUSION_BLOCKS) <= set(baselines.HISTOGRAM_BLOCKS)
    for command, option, names in [("crossval", "--fusion", FUSION_BLOCKS),
                                   ("fuse", "--features", FUSION_BLOCKS),
                                   ("finetune", "--fusion", SAVED_FUSION_BLOCKS),
                                   ("baselines", "--features", baselines.BLOCKS)]:
        text = _option_help(command, option)
        assert all(n in text for n in names), (command, option, text)
    for command in ("crossval", "finetune"):
        text = _option_help(command, "--preset")
        assert [name for name in CROSSVAL if f"{name}:" not in text] == []
        assert all(name in _option_help(command, "--arch") for name in SURGERIES)
    assert all(name in _option_help("pcnn", "--preset") for name in PCNN)
    # the presets' other descriptions: the module's docstring and the map's Layout line
    from pathlib import Path

    import vsent.presets

    root = Path(__file__).resolve().parents[1]
    layout = (root / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    presets_line = next(line for line in layout.splitlines()
                        if line.lstrip().startswith("presets.py "))
    assert [n for n in CROSSVAL if f"``{n}``" not in vsent.presets.__doc__] == []
    assert [n for n in CROSSVAL if n not in presets_line] == []


def test_regions_options_left_out_keep_the_config_defaults(monkeypatch, tmp_path):
    import vsent.analyses.regions as R
    import vsent.analyses.regions_run as RR

    seen = {}

    def fake(run, out, cfg, **kw):
        seen["cfg"], seen["kw"] = cfg, kw
        return {}

    monkeypatch.setattr(RR, "evaluate_regions", fake)
    assert main(["regions", "--run", str(tmp_path), "--k", "3", "--folds", "1,2"]) == 0
    assert seen["cfg"] == R.RegionConfig(k=3, folds=(1, 2))
    assert seen["kw"]["resume"] is False and seen["kw"]["overwrite"] is False


def test_progress_bars_only_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_enabled(False) is False  # a log file or pipe: no bars
    monkeypatch.setattr(sys, "stderr", Tty())
    assert progress_enabled(False) is True
    assert progress_enabled(True) is False  # --no-progress


@pytest.mark.parametrize("command", ["regions", "pcnn", "pcnn-transfer", "predict"])
def test_no_progress_reaches_each_commands_work_and_bars_are_on_by_default(
        command, tmp_path, monkeypatch):
    """On a terminal a command draws its bars unless --no-progress (mut54a: under pytest stderr
    is no terminal, so an option dropped on its way to the library call went unseen)."""
    import contextlib
    import types

    import vsent.analyses.pcnn as P
    import vsent.analyses.regions_run as RR
    import vsent.batch
    import vsent.engines

    seen: list[bool] = []
    monkeypatch.setattr("vsent.progress.on_terminal", lambda progress: progress)  # a terminal
    monkeypatch.setattr(RR, "evaluate_regions", lambda run, out, cfg, *, progress, **kw:
                        seen.append(progress) or {})
    monkeypatch.setattr(P, "progressive", lambda cfg, out, *, progress, **kw: seen.append(
        progress) or {"n_removed": 0, "n_images": 1, "removed_share": 0.0, "model": "m",
                      "stage1_model": "s"})
    monkeypatch.setattr(P, "transfer", lambda cfg, out, *, progress, **kw:
                        seen.append(progress) or {"rows": []})

    @contextlib.contextmanager
    def engine(name, options):
        seen.append(options.progress)
        yield types.SimpleNamespace(score=None)

    monkeypatch.setattr(vsent.engines, "open_engine", engine)
    monkeypatch.setattr(vsent.batch, "score_stream", lambda *a, progress, **kw:
                        seen.append(progress) or vsent.batch.Summary(total=1))
    (tmp_path / "m.pt").write_bytes(b"x")
    argv = {"regions": ["--run", str(tmp_path)],
            "pcnn": ["--data", str(tmp_path), "--out", str(tmp_path / "o")],
            "pcnn-transfer": ["--model", str(tmp_path / "m.pt"), "--data", str(tmp_path),
                              "--out", str(tmp_path / "o")],
            "predict": ["--model", str(tmp_path / "m.pt"), str(tmp_path),
                        "--out", str(tmp_path / "p.csv")]}[command]
    assert main([command, *argv]) == 0
    assert seen and all(seen), seen
    seen.clear()
    assert main([command, *argv, "--no-progress", "--overwrite"]) == 0
    assert seen and not any(seen), seen


def test_the_python_api_draws_no_bars_into_a_file_or_pipe(monkeypatch):
    """audit_readme28 #2: crossval(), fit() & co. default to progress=True, which drew tqdm
    bars into a log file; bars are drawn only on a terminal, a log gets LogProgress lines."""
    from vsent.progress import LogProgress, on_terminal, progress_bar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert on_terminal(True) is False
    assert isinstance(progress_bar(range(3), enabled=True), LogProgress)
    monkeypatch.setattr(sys, "stderr", Tty())
    assert on_terminal(True) is True and on_terminal(False) is False
    assert not isinstance(progress_bar(range(3), enabled=True), LogProgress)


def test_a_piped_log_has_one_line_per_epoch_and_no_carriage_returns(twitter_like, tmp_path):
    out = tmp_path / "ft"
    proc = subprocess.run(
        [sys.executable, "-m", "vsent.cli", "finetune", "--data", str(twitter_like), "--out",
         str(out), "--preset", "quick", "--epochs", "3", "--batch-size", "8",
         "--device", "cpu"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    epoch_lines = [ln for ln in proc.stderr.splitlines() if "finetune epoch" in ln]
    assert [ln.split("finetune epoch ")[1].split()[0] for ln in epoch_lines] == \
        ["1/3", "2/3", "3/3"]


def test_explain_output_follows_the_run_directory_policy(tmp_path, capsys):
    import numpy as np
    import torch
    from PIL import Image

    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)))
    images = []
    for i in range(2):
        images.append(tmp_path / f"img{i}.png")
        Image.fromarray(np.full((30, 40, 3), 60 * i, np.uint8)).save(images[-1])
    out = tmp_path / "out"
    argv = ["explain", str(images[0]), "--model", str(ckpt), "--out", str(out),
            "--device", "cpu"]
    assert main(argv) == 0
    first = (out / "explain.csv").read_text()
    stamp = (out / "explain.csv").stat().st_mtime_ns
    assert main(argv) == 0  # finished: the stored result, not redone
    assert (out / "explain.csv").stat().st_mtime_ns == stamp
    capsys.readouterr()
    other = ["explain", str(images[1]), *argv[2:]]
    assert main(other) == 2  # other images: refused, named, nothing overwritten
    err = capsys.readouterr().err
    assert "images: stored" in err and "--overwrite" in err and "Traceback" not in err
    assert (out / "explain.csv").read_text() == first
    assert main([*other, "--overwrite"]) == 0
    assert str(images[1]) in (out / "explain.csv").read_text()
    assert str(images[0]) not in (out / "explain.csv").read_text()


@pytest.mark.parametrize("error, said", [
    (OSError(28, "No space left on device", "/r/fold1/model.pt"),
     "/r/fold1/model.pt: no space left on device"),
    (OSError(28, "No space left on device"),  # no file named: no "None: " before it
     "no space left on device"),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "/r/x.npy"),  # the user's quota is full
     "/r/x.npy: disk quota exceeded"),
    (OSError("152576 requested and 145376 written"),  # numpy's short write
     "cannot write (152576 requested and 145376 written: is the disk full?)"),
])
def test_a_full_disk_is_one_line_and_exit_2(monkeypatch, capsys, twitter_like, tmp_path, error,
                                            said):
    """robust36 #5: a write that found the disk full (explain's numpy save, regions'
    atomic_open) ended in a traceback, then logging's own ("--- Logging error ---") when
    run.log could not take the next line. One line saying how to continue; a log line that
    cannot be written is no traceback."""
    import vsent.crossval

    def full(*args, **kwargs):
        logging.getLogger("vsent").addHandler(_Failing(tmp_path / "run.log"))
        try:
            logging.getLogger("vsent").info("a line run.log cannot take")
            try:
                raise error
            except OSError:
                raise RuntimeError("a library's error while handling it") from None
        finally:
            for h in [h for h in logging.getLogger("vsent").handlers if isinstance(h, _Failing)]:
                logging.getLogger("vsent").removeHandler(h)
                h.close()  # (it opens run.log when made)

    monkeypatch.setattr(vsent.crossval, "crossval", full)
    argv = ["crossval", "--data", str(twitter_like), "--preset", "quick", "--out",
            str(tmp_path / "r")]
    (tmp_path / "r").mkdir()  # what the run had written before the disk filled
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"vsent: error: {said}: free some space; what was written is kept: the same command "
        "with --resume continues it")
    assert "Traceback" not in err and "Logging error" not in err, err

    import vsent.models.card  # a command that keeps nothing (review36 #3: "what was kept")

    monkeypatch.setattr(vsent.models.card, "model_card", full)
    assert main(["card", str(tmp_path / "m.pt")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"vsent: error: {said}: free some space and run the command again")

    def other(*args, **kwargs):
        raise OSError(13, "Permission denied")  # not a full disk: a bug's traceback, as before

    monkeypatch.setattr(vsent.crossval, "crossval", other)
    with pytest.raises(PermissionError):
        main(argv)


class _Failing(_RunLog):
    """run.log's handler on a full disk."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            self.handleError(record)


def test_run_log_reports_a_log_calls_own_mistake_as_logging_does(tmp_path, capsys):
    """Only a write run.log cannot make is dropped quietly: a bad format is still said."""
    handler = _RunLog(tmp_path / "run.log")
    record = logging.LogRecord("vsent", logging.ERROR, __file__, 1, "%d", ("x",), None)
    try:
        raise TypeError("%d format: a real number is required, not str")
    except TypeError:
        handler.handleError(record)
    assert "--- Logging error ---" in capsys.readouterr().err
    try:
        raise OSError(28, "No space left on device")
    except OSError:
        handler.handleError(record)
    assert capsys.readouterr().err == ""
    handler.close()


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys, twitter_like, tmp_path):
    import vsent.cli.crossval as crossval_cli
    import vsent.crossval

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(vsent.crossval, "crossval", interrupted)
    argv = ["crossval", "--data", str(twitter_like), "--preset", "quick", "--out",
            str(tmp_path / "r")]
    # stopped before --out was written: nothing is said to be kept (prac37 #7)
    assert main(argv) == 130
    assert capsys.readouterr().err == "vsent: interrupted\n"
    # a rank started by --nproc says nothing: its launcher says it once for all ranks
    from vsent.errors import LAUNCHED_BY_VSENT

    monkeypatch.setenv(LAUNCHED_BY_VSENT, "1")
    assert main(argv) == 130 and capsys.readouterr().err == ""
    monkeypatch.delenv(LAUNCHED_BY_VSENT)
    (tmp_path / "r").mkdir()  # what the run had written before the interrupt
    assert main(argv) == 130
    assert capsys.readouterr().err == ("vsent: interrupted; what was written is kept: the same "
                                       "command with --resume continues it\n")
    assert main([*argv, "--resume"]) == 130  # already given
    assert capsys.readouterr().err == ("vsent: interrupted; what was written is kept: the same "
                                       "command continues it\n")
    # a command with nothing to continue says it stopped, no more (robust36 #13)
    import vsent.models.card

    monkeypatch.setattr(vsent.models.card, "model_card", interrupted)
    assert main(["card", str(tmp_path / "m.pt")]) == 130
    assert capsys.readouterr().err == "vsent: interrupted\n"
    # reproduce's default --out (None until it names runs/reproduce/PAPER) is a folder too:
    # stopped before it is written, nothing is said to be kept there (review37b #6)
    import vsent.reports.runner

    monkeypatch.setattr(vsent.reports.runner, "reproduce", interrupted)
    monkeypatch.chdir(tmp_path)
    reproduce = ["reproduce", "sun2016", "--quick", "--data", str(twitter_like)]
    assert main(reproduce) == 130
    assert capsys.readouterr().err == "vsent: interrupted\n"
    (tmp_path / "runs" / "reproduce" / "sun2016-quick").mkdir(parents=True)
    assert main(reproduce) == 130
    assert capsys.readouterr().err == ("vsent: interrupted; what was written is kept: the same "
                                       "command with --resume continues it\n")
    # a command without --resume (layers, fuse) continues when run again; fuse's default
    # folder is RUN/fuse/<setting>
    import vsent.analyses.fusion_run

    monkeypatch.setattr(vsent.analyses.fusion_run, "fuse", interrupted)
    assert main(["fuse", str(tmp_path / "r"), "--features", "gch + bow"]) == 130
    assert capsys.readouterr().err == "vsent: interrupted\n"
    (tmp_path / "r" / "fuse" / "gch+bow-mean-w0.5-logistic").mkdir(parents=True)
    assert main(["fuse", str(tmp_path / "r"), "--features", "gch + bow"]) == 130
    assert capsys.readouterr().err == ("vsent: interrupted; what was written is kept: the same "
                                       "command continues it\n")
    monkeypatch.setattr(crossval_cli, "run_models", interrupted)  # one that keeps nothing
    assert main(["models"]) == 130
    assert capsys.readouterr().err == "vsent: interrupted\n"


def test_every_training_option_has_help_and_names_its_choices():
    from vsent.config import OPTIMIZERS, SCHEDULES

    actions = {a.dest: a for a in _subparsers()["finetune"]._actions}
    for name in ("epochs", "batch_size", "lr", "momentum", "weight_decay", "optimizer",
                 "schedule", "lr_step", "lr_gamma", "head_lr_mult", "bias_lr_mult",
                 "label_smoothing", "augment", "ema", "mix", "momentum_form"):
        assert actions[name].help.endswith("(default: the preset's)"), name
        # one default: "--mix ... none (default) ... (default: the preset's)" said two
        assert actions[name].help.count("default") == 1, name
    assert all(o in actions["optimizer"].help for o in OPTIMIZERS)
    assert all(s in actions["schedule"].help for s in SCHEDULES)
    # pcnn-transfer has no --preset: its help gives its recipe's values
    from vsent.presets import TRANSFER_TRAIN

    transfer = {a.dest: a for a in _subparsers()["pcnn-transfer"]._actions}
    assert transfer["epochs"].help.endswith(f"(default: {TRANSFER_TRAIN.epochs})")
    assert transfer["momentum_form"].help.endswith("(default: caffe)")
    assert not any("preset" in (a.help or "") for a in transfer.values())


@pytest.mark.parametrize("command", ["crossval", "layers", "pcnn", "baselines", "regions"])
@pytest.mark.parametrize("seed", ["-1", "4294967296", "1.5"])
def test_a_seed_out_of_range_is_refused_before_any_work(command, seed, capsys):
    """scikit-learn and numpy take seeds 0 .. 2**32 - 1: another one would stop a run at its
    first C search, after hours of feature extraction or training."""
    with pytest.raises(SystemExit) as e:
        main([command, "--seed", seed])
    assert e.value.code == 2
    assert "argument --seed:" in capsys.readouterr().err


@pytest.mark.parametrize("argv,option", [
    (["finetune", "--lr", "inf"], "--lr inf"),
    (["finetune", "--weight-decay", "inf"], "--weight-decay inf"),
    (["finetune", "--head-lr-mult", "inf"], "--head-lr-mult inf"),
    (["finetune", "--bias-lr-mult", "inf"], "--bias-lr-mult inf"),
    (["crossval", "--extra-train", "four", "--extra-schedule", "joint+finetune",
      "--finetune-lr", "inf"], "--finetune-lr inf"),
    (["pcnn", "--finetune-lr", "inf"], "stage 2: --finetune-lr inf"),
])
def test_an_infinite_option_is_refused_before_any_work(argv, option, tmp_path, capsys):
    """`--lr inf` passed ``lr > 0`` and trained into NaN weights, exit 0."""
    out = tmp_path / "run"
    assert main([*argv, "--data", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"vsent: error: {option} is out of range "
                                                      "(a finite number ")
    assert not out.exists()


def test_config_records_refuse_a_seed_out_of_range(tmp_path):
    """The same range in the Python API, record by record (and the largest seed is fine)."""
    from vsent.analyses.baselines import BaselineConfig
    from vsent.analyses.pcnn import ProgressiveConfig, TransferConfig
    from vsent.analyses.probes import ProbeConfig
    from vsent.analyses.regions import RegionConfig
    from vsent.config import MAX_SEED, MAX_TRAIN_SEED, RunConfig, TrainConfig
    from vsent.errors import VsentError

    builders = [lambda s: RunConfig(data="d", seed=s), lambda s: ProbeConfig(seed=s),
                lambda s: RegionConfig(seed=s), lambda s: BaselineConfig(seed=s),
                lambda s: ProgressiveConfig(data="d", seed=s),
                # pcnn-transfer's own check (mut58a P74: its subsets' runs refused it later)
                lambda s: TransferConfig(model="m.pt", data="d", seed=s)]
    for build in builders:
        assert build(MAX_SEED).seed == MAX_SEED
        for bad in (-1, MAX_SEED + 1, 2.0, True, "3"):
            with pytest.raises(VsentError, match=r"--seed must be an integer in 0\.\.4294967295"):
                build(bad)
    # a training stage's seed is derived (crossval's fold k: seed * 1000 + k): torch's and
    # numpy's generators take it, so only a negative or non-integer one is refused
    assert TrainConfig(seed=MAX_SEED * 1000 + 5).seed == MAX_SEED * 1000 + 5
    assert ProgressiveConfig(data="d", seed=MAX_SEED).seeds["stage2"] == MAX_SEED + 1
    for bad in (-1, MAX_TRAIN_SEED + 1, 2.0):  # the message says the stage's limit (mut52c C04)
        with pytest.raises(VsentError, match=r"^--seed must be an integer in "
                                             r"0\.\.9223372036854775807, got "):
            TrainConfig(seed=bad)


def test_the_largest_seed_reaches_scikit_learn_in_range():
    """Seeds derived from the largest one (a fold's seed * 1000 + k, the fusion's outer split
    at seed + 1) are reduced below 2**32 where scikit-learn takes them."""
    import numpy as np

    from vsent.analyses.fusion import hand_crafted_probabilities
    from vsent.config import MAX_SEED

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), np.repeat([0, 1], 20)
    res = hand_crafted_probabilities(X, y, np.arange(30), np.arange(30, 40), seed=MAX_SEED,
                                     oof=True)
    assert res.test.shape == (10,)


@pytest.mark.parametrize("cmd", ["crossval", "finetune"])
def test_training_options_with_zero_shot_are_refused_in_one_line(cmd, tmp_path, capsys):
    """Nothing trains in a zero-shot run: --epochs & co. would be stored in config.json (and
    on the cards) as a recipe that never ran."""
    base = [cmd, "--data", str(tmp_path / "none"), "--model", "clip/ViT-B-32", "--init",
            "random", "--zero-shot", "--out", str(tmp_path / "o")]
    for extra, named in ((["--epochs", "3"], "--epochs"),
                         (["--lr", "0.1", "--optimizer", "adamw"], "--lr, --optimizer"),
                         (["--batch-size", "8", "--schedule", "cosine"],
                          "--batch-size, --schedule")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err == f"vsent: error: {named}: not with --zero-shot (nothing is trained)\n"
    assert not (tmp_path / "o").exists()


def test_zero_shot_config_refuses_a_recipe_other_than_its_presets():
    from vsent.config import RunConfig
    from vsent.crossval import prepare
    from vsent.errors import VsentError
    from vsent.presets import CROSSVAL

    quick = CROSSVAL["quick"]["train"]
    kw = {"data": "x", "model": "clip/ViT-B-32", "init": "random", "zero_shot": True,
          "preset": "quick"}
    # run options, not a recipe
    RunConfig(**kw, train=quick.replace(seed=3, device="cpu")).check_zero_shot_recipe()
    changed = RunConfig(**kw, train=quick.replace(epochs=3, mix="mixup"))
    with pytest.raises(VsentError, match=r"^--epochs, --mix: not with --zero-shot"):
        changed.check_zero_shot_recipe()
    with pytest.raises(VsentError, match=r"^--epochs, --mix: not with --zero-shot"):
        prepare(changed)  # a run starts (or resumes) with the check, before anything else
    # a run stored before the check still opens (layers, regions, compare read it)
    assert RunConfig.from_dict(changed.to_dict()) == changed


def test_a_folds_file_that_does_not_exist_is_refused_even_where_unused(twitter_like, tmp_path,
                                                                       capsys):
    """`finetune` without --fold reads no folds: a misspelt --folds file was accepted and
    recorded in config.json as the run's split (audit cli25 #11)."""
    out = tmp_path / "run"
    base = ["finetune", "--data", str(twitter_like), "--out", str(out), "--preset", "quick",
            "--epochs", "1", "--no-progress"]
    for extra in ([], ["--fold", "1"]):
        assert main([*base, "--folds", "nofile.json", *extra]) == 2
        assert capsys.readouterr().err == (
            "vsent: error: nofile.json: no such file or directory (--folds expects campos, "
            "stratified or a folds JSON file)\n")
        assert not out.exists()  # refused before the run directory is made
        # a folder is called one (the CLI's own check said "no such file")
        assert main([*base, "--folds", str(tmp_path), *extra]) == 2
        assert capsys.readouterr().err == (
            f"vsent: error: {tmp_path}: is a folder, not a folds JSON file (--folds expects "
            "campos, stratified or a folds JSON file)\n")
        assert not out.exists()
    folds = tmp_path / "folds.json"
    folds.write_text("{}")
    from vsent.data.folds import check_folds_spec

    for spec in ("campos", "stratified", str(folds)):  # accepted; the file is read where used
        check_folds_spec(spec)


def test_init_arg_makes_a_weights_file_absolute_as_the_registry_reads_it(tmp_path,
                                                                          monkeypatch):
    from vsent.cli.common import init_arg

    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.pt").write_bytes(b"x")
    assert init_arg("w.pt") == str(tmp_path / "w.pt")
    assert init_arg("openai=w.pt") == f"openai={tmp_path / 'w.pt'}"
    # an existing file whose name holds "=" is that file (split_tagged_init's rule)
    (tmp_path / "openai=w.pt").write_bytes(b"y")
    assert init_arg("openai=w.pt") == str(tmp_path / "openai=w.pt")
    for word in ("random", "imagenet", "nothere.pt", "openai=nothere.pt"):
        assert init_arg(word) == word


def test_an_interrupt_that_a_library_turns_into_its_own_error_is_still_the_interrupt(
        monkeypatch, capsys, tmp_path):
    """audit_readme28 #1: SIGTERM inside torch.save's zip writer ended as its RuntimeError
    ("unexpected pos"), a traceback and exit 1; it is the interrupt: one line, 143 (130 for
    Ctrl-C). An error with no interrupt behind it is still a bug's traceback."""
    import torch

    import vsent.cli.cache as cache_cli
    from vsent.cli import Terminated

    def saving(args):
        try:
            torch.save({"w": torch.zeros(3)}, tmp_path / "state.pt")
            raise Terminated  # as the SIGTERM handler does inside the write
        finally:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos 64")

    monkeypatch.setattr(cache_cli, "run_cache", saving)
    assert main(["cache"]) == 143
    assert capsys.readouterr().err == "vsent: terminated\n"  # (cache keeps nothing to continue)

    def ctrl_c(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise OSError("write failed") from None

    monkeypatch.setattr(cache_cli, "run_cache", ctrl_c)
    assert main(["cache"]) == 130  # (`from None` hides the cause; the context stays)

    def bug(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cache_cli, "run_cache", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["cache"])


@pytest.mark.parametrize("command,missing,extra,who", [
    ("serve", "uvicorn", "serve", "vsent serve"),
    ("serve", "fastapi", "serve", "vsent serve"),
    ("predict --engine ray", "ray", "ray", "--engine ray"),
])
def test_a_command_without_its_extra_names_it_in_one_line(checkpoint, tmp_path, capsys,
                                                          monkeypatch, command, missing, extra,
                                                          who):
    """An optional library not installed: one line naming the extra to install, exit 2."""
    for name in [m for m in sys.modules if m == "vsent.serve" or m.startswith("vsent.serve.")]:
        monkeypatch.delitem(sys.modules, name)  # imported again, without the missing library
    monkeypatch.setitem(sys.modules, missing, None)
    image = tmp_path / "a.png"
    image.write_bytes(b"not read")
    inputs = ["--port", "0"] if command == "serve" else [str(image)]
    assert main([*command.split(), "--model", str(checkpoint), *inputs]) == 2
    assert capsys.readouterr().err == (f"vsent: error: {who} needs the {extra!r} extra "
                                       f"({missing} is missing): pip install 'vsent[{extra}]'\n")


@pytest.mark.parametrize("option,value,said", [
    ("--port", "70000", "--port must be in 0..65535, got 70000"),
    ("--max-request-mb", "0", "--max-request-mb must be a finite number > 0, got 0.0"),
])
def test_serves_own_options_are_checked_before_its_extra(checkpoint, capsys, monkeypatch,
                                                        option, value, said):
    """session 48 kept: without the serve extra a bad --port was reported as the missing extra;
    fixed, the user installed it only to learn that the port was wrong."""
    for name in [m for m in sys.modules if m == "vsent.serve" or m.startswith("vsent.serve.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve", "--model", str(checkpoint), option, value]) == 2
    assert capsys.readouterr().err == f"vsent: error: {said}\n"


def test_the_console_says_vsents_lines_and_a_librarys_warnings_not_its_info_lines():
    """session 36: torch logs "FakeTensor cache stats" at info level from an exit hook; an
    export interrupted early (before torch had set up its loggers) printed those lines after
    "vsent: interrupted", since the console took every library's info lines."""
    code = ("import atexit, logging, sys\n"
            "from vsent.cli import main\n"
            "rc = main(['models'])  # sets the console up\n"
            "lib = logging.getLogger('somelib')\n"
            "atexit.register(lambda: lib.info('library info'))\n"
            "lib.warning('library warning')\n"
            "logging.getLogger('vsent.x').info('vsent info')\n"
            "sys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith("library warning\nvsent info\n")
    assert "library info" not in done.stderr
    # a program that set vsent's level keeps it (review37 #12)
    quiet = code.replace("from vsent.cli import main\n", "from vsent.cli import main\n"
                         "logging.getLogger('vsent').setLevel(logging.WARNING)\n")
    done = subprocess.run([sys.executable, "-c", quiet], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stderr.endswith("library warning\n"), done.stderr


def test_a_missing_default_data_is_said_to_be_the_default(tmp_path, monkeypatch, capsys):
    """`vsent crossval --preset quick` away from the dataset named ../shared/datasets/twitter1,
    a path the user never typed, with no word of --data or VSENT_DATA."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VSENT_DATA", raising=False)
    default = tmp_path.parent / "shared" / "datasets" / "twitter1"
    for argv in (["crossval", "--preset", "quick"], ["baselines"]):
        assert main([*argv, "--out", str(tmp_path / "r")]) == 2
        assert capsys.readouterr().err == (
            f"vsent: error: {default}: no such file or directory (the default --data: give the "
            "dataset's folder with --data, or set VSENT_DATA)\n")
    monkeypatch.setenv("VSENT_DATA", "gone")
    assert main(["crossval", "--preset", "quick", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.endswith(
        "(the default --data, from VSENT_DATA: give the dataset's folder with --data, or "
        "correct VSENT_DATA)\n")
    # typed: the path is the user's own, said as it is
    assert main(["crossval", "--preset", "quick", "--data", "gone", "--out",
                 str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == (
        f"vsent: error: {tmp_path / 'gone'}: no such file or directory\n")
    assert not (tmp_path / "r").exists()
    # the data a run to continue was started with, moved since: not "the default --data"
    run = tmp_path / "run"
    run.mkdir()
    for command in ("crossval", "pcnn"):
        (run / "config.json").write_text(json.dumps({"command": command,
                                                     "data": str(tmp_path / "gone")}))
        assert main([command, "--resume", "--out", str(run), "--no-progress"]) == 2
        assert capsys.readouterr().err == (
            f"vsent: error: {tmp_path / 'gone'}: no such file or directory (the --data {run} "
            "was started with: if it moved, a link at that path to its new place continues "
            "the run)\n")


# mut40: behaviours a mutation of cli/common.py and crossval's --resume check changed unseen


def test_data_typed_with_an_equals_sign_is_the_users_own(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VSENT_DATA", raising=False)
    assert main(["crossval", "--preset", "quick", "--data=gone", "--out",
                 str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == (
        f"vsent: error: {tmp_path / 'gone'}: no such file or directory\n")


def test_a_relative_out_is_kept_as_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert build_parser().parse_args(["crossval", "--out", "runs/x"]).out == "runs/x"


def _stored(out, argv):
    from vsent.cli.crossval import run_config

    out.mkdir()
    cfg, _ = run_config(build_parser().parse_args(argv))
    (out / "config.json").write_text(json.dumps({"command": "crossval", **cfg.to_dict()}))
    return cfg


def test_a_preset_option_given_with_its_own_value_is_no_difference(tmp_path):
    """--lr makes the preset None; the lr is compared, not the preset's name."""
    from vsent.cli.crossval import run_config

    out = tmp_path / "run"
    argv = ["crossval", "--preset", "quick", "--out", str(out), "--device", "cpu"]
    cfg = _stored(out, argv)
    resumed, _ = run_config(build_parser().parse_args(
        [*argv, "--resume", "--lr", repr(cfg.train.lr)]))
    assert resumed.train.lr == cfg.train.lr


def test_every_difference_inside_a_key_is_said(tmp_path):
    from vsent.cli.crossval import run_config
    from vsent.errors import VsentError

    out = tmp_path / "run"
    argv = ["crossval", "--preset", "quick", "--extra-train", "three", "--extra-schedule",
            "joint+finetune", "--out", str(out), "--device", "cpu"]
    _stored(out, argv)
    stored = json.loads((out / "config.json").read_text())
    stored["finetune"]["lr"] = 0.123
    (out / "config.json").write_text(json.dumps(stored))
    (out / "fold1").mkdir()
    (out / "fold1" / "history.json").write_text("[]")  # a result: options are compared
    with pytest.raises(VsentError, match=r"finetune.epochs: stored \d+, now 7; finetune.lr: "
                                         r"stored 0.123, now"):
        run_config(build_parser().parse_args([*argv, "--resume", "--finetune-epochs", "7"]))


def test_a_folds_file_is_recorded_absolute_and_an_older_relative_record_is_the_same(
        tmp_path, monkeypatch):
    """review40c #6: `--folds myfolds.json` was recorded as typed, so `baselines --resume --out
    DIR` from another folder read another file of that name (or none), and restating its path
    from there was refused as other folds."""
    from vsent.runs import config_diff

    monkeypatch.chdir(tmp_path)
    (tmp_path / "myfolds.json").write_text("{}")
    for command in ("crossval", "baselines", "pcnn-transfer"):
        parsed = build_parser().parse_args([command, "--folds", "myfolds.json"])
        assert parsed.folds == str(tmp_path / "myfolds.json"), command
        assert build_parser().parse_args([command, "--folds", "campos"]).folds == "campos"
    assert build_parser().parse_args(["crossval", "--folds", "none.json"]).folds == "none.json"
    # a run recorded before: its relative name and the absolute one are one file from here
    assert config_diff({"folds": "myfolds.json"}, {"folds": str(tmp_path / "myfolds.json")}) == []
    assert config_diff({"folds": "myfolds.json"}, {"folds": str(tmp_path / "other.json")})
    assert config_diff({"folds": "campos"}, {"folds": "stratified"})


# mut41: the --resume rules and the hints a mutation changed unseen

def test_a_folder_named_as_a_weights_word_or_folds_file_is_no_file(tmp_path, monkeypatch):
    """`--init imagenet` beside a folder named imagenet (a dataset's, say) is the word, not
    that folder made absolute; a folder given as --folds stays as typed (its error names it)."""
    monkeypatch.chdir(tmp_path)
    for name in ("imagenet", "folds.json", "w.pt"):
        (tmp_path / name).mkdir()
    assert init_arg("imagenet") == "imagenet"
    assert init_arg("openai=w.pt") == "openai=w.pt"
    assert folds_arg("folds.json") == "folds.json"


def test_options_built_without_main_make_the_config_and_start_a_run(tmp_path):
    """Options parsed by the Python API (no ``argv``: nothing says which were typed) are the
    config: not continued 'as started', and no --out without a run is refused for them."""
    from vsent.cli.common import as_started, refuse_no_run

    args = build_parser().parse_args(["baselines", "--resume", "--out", str(tmp_path / "x")])
    assert getattr(args, "argv", None) is None
    assert not as_started(args)
    refuse_no_run(args, "--features gch")  # (no error: the options given start the run)
    args.argv = ["baselines", "--resume", "--out", str(tmp_path / "x")]
    assert as_started(args)


def _fake_run(out, config):
    import json

    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(config))
    (out / "versions.json").write_text("{}")
    return out


def test_pcnn_resume_on_another_commands_run_takes_nothing_from_it(tmp_path, capsys):
    """`vsent pcnn --resume --out CROSSVAL_RUN`: the crossval run's --data is not taken (its
    config is no pcnn recipe); refused in one line naming what the folder holds."""
    out = _fake_run(tmp_path / "cv", {"command": "crossval", "data": str(tmp_path / "data")})
    assert main(["pcnn", "--resume", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "vsent: error: --data is required (the weakly labelled images): "
        f"{out} holds a crossval run, not a pcnn run\n")
    own = _fake_run(tmp_path / "own", {"command": "pcnn"})  # its own run, recording no data
    assert main(["pcnn", "--resume", "--out", str(own)]) == 2
    assert capsys.readouterr().err == (
        "vsent: error: --data is required (the weakly labelled images): "
        f"{own / 'config.json'} records none\n")


def test_resumed_config_takes_the_runs_data_for_options_at_their_default(tmp_path):
    """Options built without main (no argv): --data at its default is the resumed run's; one
    given is kept. Without --resume nothing is taken."""
    from vsent.cli.common import resumed_config

    out = _fake_run(tmp_path / "bl", {"command": "baselines", "data": "/stored/data"})
    args = build_parser().parse_args(["baselines", "--resume", "--out", str(out)])
    assert resumed_config(args, "--data")["data"] == "/stored/data"
    assert args.data == "/stored/data"
    given = build_parser().parse_args(["baselines", "--resume", "--out", str(out),
                                       "--data", str(tmp_path / "mine")])
    resumed_config(given, "--data")
    assert given.data == str(tmp_path / "mine")
    fresh = build_parser().parse_args(["baselines", "--out", str(out)])
    assert resumed_config(fresh, "--data") is None and fresh.data != "/stored/data"
    # a run recorded without "command" is this command's, as its opening (and crossval) take it
    old = _fake_run(tmp_path / "old", {"data": "/stored/data"})
    args = build_parser().parse_args(["baselines", "--resume", "--out", str(old)])
    assert resumed_config(args, "--data") == {"data": "/stored/data"}
    assert args.data == "/stored/data"


def test_pcnn_overwrite_without_data_is_refused_not_the_old_runs_data(tmp_path, capsys):
    """--data is required unless --resume continues a run: --overwrite does not take the
    data of the run it would delete."""
    out = _fake_run(tmp_path / "p", {"command": "pcnn", "data": str(tmp_path / "data")})
    assert main(["pcnn", "--overwrite", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "vsent: error: --data is required (the weakly labelled images)\n")
    assert (out / "config.json").exists()


def test_pcnn_resume_with_a_recipe_and_no_run_says_why_data_is_needed(tmp_path, capsys):
    """--resume with recipe options on an --out holding no run starts one, for which --data
    is required: said with the reason no run gave it."""
    out = tmp_path / "none"
    assert main(["pcnn", "--resume", "--out", str(out), "--preset", "quick"]) == 2
    assert capsys.readouterr().err == (
        "vsent: error: --data is required (the weakly labelled images): "
        f"{out} holds no run to continue\n")


def _run(out, config, versions=True):
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(config))
    if versions:
        (out / "versions.json").write_text("{}")
    return out


def _args(out, argv, **kw):
    return argparse.Namespace(out=str(out), argv=argv, **{"resume": True, "data": None, **kw})


def test_the_started_with_hint_is_for_a_stored_path_nobody_typed(tmp_path, monkeypatch):
    monkeypatch.setenv("VSENT_DATA", str(tmp_path / "default"))
    data, ckpt = str(tmp_path / "gone"), str(tmp_path / "gone.pt")
    out = _run(tmp_path / "r", {"command": "pcnn-transfer", "data": data, "model": ckpt})
    missing = VsentError(f"{data}: no such file or directory")
    hint = (f" (the --data {out} was started with: if it moved, a link at that path to its "
            "new place continues the run)")
    resumed = ["pcnn-transfer", "--resume", "--out", str(out)]
    assert _missing_path_hint(_args(out, resumed, data=data), missing) == hint
    # typed: the user's own path, no hint
    assert _missing_path_hint(_args(out, [*resumed, "--data", data], data=data), missing) == ""
    # no --resume: nothing was taken from the run
    assert _missing_path_hint(_args(out, resumed[:1], data=str(tmp_path / "default"),
                                    resume=False), missing) == ""
    # the checkpoint too
    gone = VsentError(f"{ckpt}: no such file or directory")
    assert _missing_path_hint(_args(out, resumed, model=ckpt), gone) == hint.replace(
        "--data", "--model")
    assert _missing_path_hint(_args(out, [*resumed, "--model", ckpt], model=ckpt), gone) == ""


def test_a_users_own_config_json_gives_no_started_with_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("VSENT_DATA", str(tmp_path / "default"))
    data = str(tmp_path / "gone")
    out = _run(tmp_path / "mine", {"data": data}, versions=False)  # no vsent run's
    args = _args(out, ["pcnn", "--resume", "--out", str(out)], data=str(tmp_path / "default"))
    assert _missing_path_hint(args, VsentError(f"{data}: no such file or directory")) == ""


def test_crossval_without_resume_on_its_own_run_keeps_the_plain_error(tmp_path, capsys):
    """The 'read on their own, --resume --out DIR alone continues it' advice is for
    --resume only: without it, the options start a run, and the error is the option's."""
    run = _run(tmp_path / "head", {"command": "crossval", "train_mode": "head"})
    assert main(["crossval", "--out", str(run), "--head", "logistic"]) == 2
    assert capsys.readouterr().err == "vsent: error: --head logistic applies to --train head\n"
    # the options' config, not compared with the stored run (--overwrite replaces it); a
    # folder with no run is no misspelt --out of a --resume
    from vsent.cli.crossval import run_config

    for argv, preset in ((["crossval", "--out", str(run), "--overwrite", "--preset", "quick"],
                          "quick"), (["crossval", "--out", str(tmp_path / "new")], "campos2015")):
        args = build_parser().parse_args(argv)
        args.argv = argv
        cfg, stored = run_config(args)
        assert (cfg.preset, cfg.train_mode, stored) == (preset, "all", None), argv


def test_crossval_resume_on_no_run_with_only_seed_or_skip_bad_is_refused(tmp_path, capsys,
                                                                        monkeypatch):
    """A misspelt --out with --resume and --seed or --skip-bad (no recipe option) would start
    the default recipe: refused, as --resume alone is."""
    monkeypatch.setenv("VSENT_DATA", str(tmp_path))
    typo = tmp_path / "runz"
    for extra in (["--seed", "1"], ["--skip-bad"], ["--seed=1", "--skip-bad"]):
        assert main(["crossval", "--resume", "--out", str(typo), *extra]) == 2
        assert capsys.readouterr().err == (
            f"vsent: error: --resume: {typo} holds no run to continue (no config.json); check "
            "--out, or give the recipe options (e.g. --preset quick) to start one\n"), extra
    assert not typo.exists()


def _crossval_run(out, data, *options):
    from vsent.cli.crossval import config_from_args

    argv = ["crossval", f"--out={out}", "--data", str(data), "--preset", "quick", *options]
    cfg = config_from_args(build_parser().parse_args(argv))
    return _run(out, {"command": "crossval", **cfg.to_dict()})


def _resumed(out, *options):
    from vsent.cli.crossval import run_config

    argv = ["crossval", "--resume", f"--out={out}", *options]
    args = build_parser().parse_args(argv)
    args.argv = argv
    return run_config(args)[0]


def test_crossval_resume_compares_a_recipe_option_typed_at_its_default(tmp_path):
    """mut49d B1: an option typed with the default's value was invisible to --resume (found by
    diffing against the defaults' config), so the stored run went on with another recipe than
    the one typed, silently; it is compared with the stored run like any other."""
    run = _crossval_run(tmp_path / "r", tmp_path, "--epochs", "3")
    for options, said in ((["--epochs", "65"], "train.epochs: stored 3, now 65"),
                          (["--model", "caffenet"], "model: stored 'smallcnn', now 'caffenet'"),
                          (["--preset", "campos2015"], "preset: stored 'quick', now "
                                                       "'campos2015'")):
        with pytest.raises(VsentError, match=re.escape(said)):
            _resumed(run, *options)
    for options in (["--epochs", "3"], ["--model", "smallcnn"], ["--train", "all"]):
        cfg = _resumed(run, *options)  # typed as stored: continued
        assert (cfg.model, cfg.train.epochs, cfg.preset) == ("smallcnn", 3, "quick")
    # the default preset typed: its whole recipe (the lr of a run with its own) is compared
    own_lr = _crossval_run(tmp_path / "lr", tmp_path, "--preset", "campos2015", "--lr", "0.5")
    with pytest.raises(VsentError, match=r"other train \(train\.lr: stored 0\.5, now "):
        _resumed(own_lr, "--preset", "campos2015")
    extra = _crossval_run(tmp_path / "extra", tmp_path, "--extra-train", "four")
    with pytest.raises(VsentError, match=re.escape("(extra_train: stored 'four', not in the new "
                                                   "config)")):
        _resumed(extra, "--extra-train", "none")


def test_every_recipe_option_of_crossval_and_finetune_names_its_config_keys():
    """B1's table: a new option of crossval or finetune must say which config keys it sets
    (else --resume could not compare it when typed at its default), or be a run option."""
    from vsent.cli.common import LAID_OVER
    from vsent.cli.crossval import NOT_RECIPE, RECIPE_KEYS

    for command in ("crossval", "finetune"):
        options = {o for a in _subparsers()[command]._actions for o in a.option_strings
                   if o.startswith("--")}
        left = options - set(RECIPE_KEYS) - NOT_RECIPE - LAID_OVER
        assert left == {"--help", "--overwrite", "--dist-backend"}, (command, left)


def test_crossval_resume_keeps_the_runs_skip_bad_unless_typed(tmp_path):
    kept = _crossval_run(tmp_path / "kept", tmp_path, "--skip-bad")
    assert _resumed(kept).skip_bad is True
    plain = _crossval_run(tmp_path / "plain", tmp_path)
    assert _resumed(plain).skip_bad is False
    assert _resumed(plain, "--skip-bad").skip_bad is True  # laid over: the fix asked for
    from vsent.cli.crossval import run_config

    # options built without main (no argv): --skip-bad's default is not one typed
    assert run_config(build_parser().parse_args(["crossval", "--resume", f"--out={kept}"])
                      )[0].skip_bad is True


def test_crossval_resume_uses_a_typed_data_even_one_naming_the_defaults_folder(tmp_path,
                                                                                monkeypatch):
    default = tmp_path / "default"
    monkeypatch.setenv("VSENT_DATA", str(default))
    run = _crossval_run(tmp_path / "r", tmp_path)
    assert _resumed(run).data == str(tmp_path)  # not typed: the run's
    assert _resumed(run, "--data", str(default)).data == str(default)  # typed: compared


def test_crossval_resume_of_an_out_starting_with_a_dash(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    _crossval_run(Path("-r"), tmp_path, "--skip-bad")
    assert _resumed(Path("-r")).skip_bad is True


# --- extend43: a preset's keys reach the CLI's config --------------------------------------


@pytest.mark.parametrize("name", sorted(CROSSVAL_PRESETS))
def test_every_crossval_preset_reaches_the_cli_config_whole(name):
    """Every key of a preset is one the CLI reads, and `--preset NAME` builds the config the
    Python API builds from it (`RunConfig(data=..., **preset)`): a key the CLI did not read
    (model_kwargs) was dropped without a word, the run recording the preset's name."""
    from vsent.cli.crossval import PRESET_KEYS, config_from_args
    from vsent.config import RunConfig
    from vsent.presets import CROSSVAL

    preset = CROSSVAL[name]
    assert set(preset) <= set(PRESET_KEYS), set(preset) - set(PRESET_KEYS)
    cfg = config_from_args(build_parser().parse_args(["crossval", "--preset", name]))
    want = RunConfig(data=cfg.data, **preset)
    assert cfg.train.replace(seed=0, device="auto") == want.train.replace(seed=0, device="auto")
    assert [getattr(cfg, k) for k in preset if k != "train"] == \
        [getattr(want, k) for k in preset if k != "train"]


@pytest.mark.parametrize("command", ["crossval", "finetune"])
def test_a_presets_model_kwargs_reach_the_cli_config(monkeypatch, command):
    """A preset's model_kwargs build the preset's model (under --model-arg); another --model
    starts from none of them."""
    from vsent.cli import crossval as C
    from vsent.cli.crossval import config_from_args

    monkeypatch.setitem(C.PRESETS, "small32",
                        {**C.PRESETS["quick"], "model_kwargs": {"image_size": 32, "widths": [8]}})

    def config(*options):
        return config_from_args(build_parser().parse_args([command, "--preset", "small32",
                                                           *options]))

    assert config().model_kwargs == {"image_size": 32, "widths": [8]}
    assert config("--model-arg", "image_size=48").model_kwargs == {"image_size": 48,
                                                                   "widths": [8]}
    assert config("--model", "smallcnn").model_kwargs == {"image_size": 32, "widths": [8]}
    assert config("--model", "pcnn").model_kwargs == {}


# mutation round 45 (mut45d): vsent.cli.crossval mutants the suite missed


@pytest.mark.parametrize("command", ["crossval", "finetune"])
def test_arch_is_caffenets_alone(command):
    """--arch (a CaffeNet surgery variant) on another model is refused when the config is
    built, naming the model; on caffenet it reaches model_kwargs."""
    from vsent.cli.crossval import config_from_args

    def config(*options):
        return config_from_args(build_parser().parse_args([command, *options]))

    with pytest.raises(VsentError, match=r"^--arch applies to caffenet, not smallcnn$"):
        config("--preset", "quick", "--arch", "fc7-2")
    assert config("--model", "caffenet", "--arch", "fc7-2").model_kwargs["arch"] == "fc7-2"
    # --arch is said last: over an arch of --model-arg
    assert config("--model", "caffenet", "--model-arg", "arch=fc8-2", "--arch",
                  "fc6-2").model_kwargs == {"arch": "fc6-2"}


@pytest.mark.parametrize("option", [["--positive", "a sunny day"], ["--negative", "rain"]])
def test_one_prompt_option_without_zero_shot_is_refused(option):
    """Any one of --positive/--negative/--prompts without --zero-shot is refused (it would
    be ignored by a run that trains)."""
    from vsent.cli.crossval import config_from_args

    with pytest.raises(VsentError, match=r"^--positive/--negative/--prompts apply to "
                                         r"--zero-shot$"):
        config_from_args(build_parser().parse_args(["crossval", *option]))


def test_resume_alone_continues_a_run_whose_config_names_no_command(tmp_path):
    """A run recorded without "command" (config.json beside versions.json) is this command's
    run: --resume alone continues its stored recipe, not the default one."""
    from vsent.cli.crossval import config_from_args, run_config

    out = tmp_path / "run"
    quick = config_from_args(build_parser().parse_args(
        ["crossval", "--preset", "quick", "--data", str(tmp_path / "data"), "--out", str(out)]))
    out.mkdir()
    (out / "config.json").write_text(json.dumps(quick.to_dict()))
    (out / "versions.json").write_text("{}")
    cfg, stored = run_config(build_parser().parse_args(["crossval", "--resume", "--out",
                                                        str(out)]))
    assert stored is not None and cfg.model == quick.model == "smallcnn"
    assert cfg.data == quick.data


# mutation round 47 (mut47c): vsent.cli and vsent.cli.common mutants the suite missed


def test_comma_lists_drop_empty_items_and_refuse_an_empty_list():
    """`--fold-ids 1,2,` (a trailing comma, a doubled one) is the list typed; only commas
    are refused, in argparse's one line."""
    from vsent.cli.common import comma_list

    assert comma_list(int)("1,,2,") == [1, 2]
    assert comma_list(str)(" svm , ,softmax") == ["svm", "softmax"]
    with pytest.raises(argparse.ArgumentTypeError, match="expected comma-separated ints"):
        comma_list(int)(" , ")


def test_model_arg_needs_a_key_before_the_equals_sign():
    from vsent.cli.common import key_value

    assert key_value(" depth = 3") == ("depth", 3)
    assert key_value("name=abc") == ("name", "abc")  # not JSON: kept as a string
    for text in ("=3", "  =3", "depth"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
            key_value(text)


# mutation round 49 (mut49d): vsent.cli.common and vsent.cli.crossval mutants the suite missed


@pytest.mark.parametrize("option", ["--data", "--out"])
def test_an_empty_data_or_out_is_argparses_one_line(option, capsys):
    """`--out "$RUN"` with RUN unset: "" would be the current folder (--overwrite would empty
    it); refused by argparse, naming the option."""
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["crossval", option, ""])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"vsent crossval: error: argument {option}: an empty path (an unset shell variable?)")


def test_folds_and_init_words_are_words_beside_a_file_of_that_name(tmp_path, monkeypatch):
    """`--folds stratified` / `--init imagenet` beside a *file* of that name are the words."""
    monkeypatch.chdir(tmp_path)
    for name in ("stratified", "campos", "imagenet", "random"):
        (tmp_path / name).write_text("x")
    assert folds_arg("stratified") == "stratified"
    assert folds_arg("campos") == "campos"
    assert init_arg("imagenet") == "imagenet"
    assert init_arg("random") == "random"
    long = "x" * 5000  # too long a name for the file system (OSError): no file, as typed
    assert (folds_arg(long), init_arg(long), init_arg(f"openai={long}")) == (
        long, long, f"openai={long}")


def test_out_expands_the_users_home(tmp_path, monkeypatch):
    """`--out=~/runs` (no shell expansion after `=`) is the home's runs, not a folder `~`;
    `-` is kept as typed."""
    from vsent.cli.common import out_path

    monkeypatch.setenv("HOME", str(tmp_path))
    assert out_path("~/runs") == str(tmp_path / "runs")
    assert build_parser().parse_args(["crossval", "--out=~/r"]).out == str(tmp_path / "r")
    assert out_path("-") == "-"
    # every command's output option is read so (mut51a F16: fuse's --out was one line away)
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if {"--out", "--json"} & set(action.option_strings):
                assert action.type is out_path, (name, action.option_strings)


def test_as_started_needs_resume_and_takes_device(tmp_path):
    """Only --resume continues a run as started: the same options without it start one;
    --device (where it runs) keeps it 'as started'."""
    from vsent.cli.common import as_started

    out = str(tmp_path / "x")
    transfer = ["pcnn-transfer", "--resume", "--out", out, "--model", "m.pt"]
    for argv, where, want in ((["baselines", "--out", out], (), False),
                              (["pcnn", "--resume", "--out", out, "--device", "cpu"], (), True),
                              (["pcnn", "--resume", "--out", out, "--no-progress"], (), True),
                              (["pcnn", "--resume", "--out", out, "--data", out], (), True),
                              (["pcnn", "--resume", "--out", out, "--skip-bad"], (), True),
                              (["baselines", "--resume", "--out", out, "--jobs", "2"], (), True),
                              (["pcnn", "--resume", "--out", out, "--epochs", "3"], (), False),
                              (transfer, ("--model",), True), (transfer, (), False)):
        args = build_parser().parse_args(argv)
        args.argv = argv
        assert bool(as_started(args, *where)) is want, argv
    # a value that starts with "-" (a negative number) is no option typed
    args = build_parser().parse_args(argv := ["finetune", "--out", out, "--fold", "-1"])
    args.argv = argv
    assert typed_options(args) == {"--out", "--fold"}


def test_resumed_config_takes_only_a_stored_path_not_a_missing_one(tmp_path):
    """A stored run that records no --data (or null) leaves the option's default: None is not
    laid over it."""
    from vsent.cli.common import resumed_config

    out = _fake_run(tmp_path / "bl", {"command": "baselines", "data": None})
    args = build_parser().parse_args(["baselines", "--resume", "--out", str(out)])
    default = args.data
    assert resumed_config(args, "--data") == {"command": "baselines", "data": None}
    assert args.data == default is not None
    odd = _fake_run(tmp_path / "odd", {"command": "baselines", "data": ["not", "a", "path"]})
    args = build_parser().parse_args(["baselines", "--resume", "--out", str(odd)])
    assert resumed_config(args, "--data")["data"] == ["not", "a", "path"]
    assert args.data == default  # (no path: left to the run's opening to refuse)


@pytest.mark.parametrize("command", ["crossval", "finetune"])
def test_crossval_and_finetune_defaults_are_those_their_help_says(command):
    """Each option left out takes the default its --help names (a default changed in one
    place and not the other would run another recipe than the one documented)."""
    args = build_parser().parse_args([command])
    helps = {a.dest: a.help for a in _subparsers()[command]._actions}
    want = {"subset": "five", "folds": "campos", "seed": 0, "device": "auto",
            "preset": "campos2015", "nproc": 1, "dist_backend": "auto", "train_mode": "all",
            "head": "linear", "skip_bad": False, "oversample": False, "model_arg": [],
            "out": f"runs/{command}", "fusion": None, "init": None}
    assert {k: getattr(args, k) for k in want} == want
    for dest in ("subset", "folds", "seed", "device", "preset", "nproc", "dist_backend", "out"):
        assert re.search(rf"default {re.escape(str(want[dest]))}\)", helps[dest]), dest
    if command == "crossval":
        assert (args.extra_train, args.extra_schedule, args.progressive_scope) == (
            "none", "joint", "all")
        assert args.finetune_epochs is None and args.finetune_lr is None
        assert "linear (the head with the run's solver, default)" in helps["head"]
        assert "default none" in helps["extra_train"]
        assert "default joint" in helps["extra_schedule"]
        assert "(default all," in helps["progressive_scope"]


def test_a_seed_out_of_range_or_no_integer_is_argparses_one_line(capsys):
    """--seed -1 / --seed x: refused by argparse, naming --seed once (not `--seed --seed`)."""
    from vsent.config import MAX_SEED

    for value, said in (("-1", f"must be an integer in 0..{MAX_SEED}, got -1"),
                        ("x", "not an integer: 'x'")):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(["crossval", "--seed", value])
        assert e.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"vsent crossval: error: argument --seed: {said}")


def _cv_config(*options, command="crossval"):
    from vsent.cli.crossval import config_from_args

    return config_from_args(build_parser().parse_args([command, "--preset", "quick",
                                                       *options]))


def test_crossval_options_reach_the_run_config():
    """Each recipe option reaches its RunConfig field (the seed and device the training's
    too); the fine-tuning stages default to 10 epochs at a tenth of the lr."""
    from vsent.cli.crossval import FINETUNE_EPOCHS
    from vsent.presets import CROSSVAL

    quick = CROSSVAL["quick"]
    plain = _cv_config()
    assert (plain.train.seed, plain.train.device, plain.preset) == (0, "auto", "quick")
    assert (plain.extra_train, plain.finetune, plain.fusion, plain.oversample) == (
        None, None, None, False)
    cfg = _cv_config("--seed", "7", "--device", "cpu", "--oversample", "--init", "random",
                     "--extra-train", "three", "--extra-schedule", "progressive",
                     "--progressive-scope", "extra", "--fusion", "gch+bow", "--lr", "0.5")
    assert (cfg.seed, cfg.train.seed, cfg.train.device) == (7, 7, "cpu")
    # the fine-tuning stage records the run's seed too (config.json: a --resume compares it;
    # mut60d X70), and --subset reaches the config (X72)
    assert (cfg.finetune.seed, _cv_config("--subset", "four").subset) == (7, "four")
    assert (cfg.oversample, cfg.init, cfg.extra_train, cfg.extra_schedule) == (
        True, "random", "three", "progressive")
    assert (cfg.progressive_scope, cfg.fusion) == ("extra", "gch+bow")
    head = _cv_config("--train", "head", "--head", "logistic")
    assert (plain.train_mode, plain.head, head.train_mode, head.head) == (
        "all", "linear", "head", "logistic")
    assert (cfg.train.lr, cfg.preset) == (0.5, None)  # an lr of the user's: no preset's
    assert (cfg.finetune.epochs, cfg.finetune.lr) == (FINETUNE_EPOCHS, 0.05) == (10, 0.05)
    assert cfg.finetune_lr_default is True
    given = _cv_config("--extra-train", "four", "--extra-schedule", "joint+finetune",
                       "--finetune-lr", "0.003", "--finetune-epochs", "4")
    assert (given.finetune.epochs, given.finetune.lr, given.finetune_lr_default) == (
        4, 0.003, False)
    assert given.finetune.optimizer == quick["train"].optimizer
    assert _cv_config("--fusion", "NONE").fusion is None
    assert (plain.init, _cv_config("--init", "imagenet").init) == (quick["init"], "imagenet")
    assert _cv_config("--preset", "strong").fusion == "gch+bow"


@pytest.mark.parametrize("options, message", [
    (["--finetune-epochs", "3"], "--finetune-epochs/--finetune-lr apply to --extra-schedule "
                                 "joint+finetune or progressive"),
    (["--finetune-lr", "0.1"], "--finetune-epochs/--finetune-lr apply to --extra-schedule "
                               "joint+finetune or progressive"),
])
def test_finetune_options_on_the_joint_schedule_are_refused_alone(options, message):
    """One --finetune-* option without a schedule that fine-tunes is refused (either one)."""
    with pytest.raises(VsentError) as e:
        _cv_config("--extra-train", "four", *options)
    assert str(e.value).startswith(message), str(e.value)


def test_bad_finetune_values_are_named_as_the_cli_spells_them():
    """A bad fine-tuning epochs or lr is named --finetune-epochs / --finetune-lr, not the
    training's --epochs / --lr."""
    for option, value in (("--finetune-epochs", "0"), ("--finetune-lr", "-1")):
        with pytest.raises(VsentError) as e:
            _cv_config("--extra-train", "four", "--extra-schedule", "joint+finetune", option,
                       value)
        assert str(e.value).startswith(f"{option} "), str(e.value)


def test_crossval_resume_with_other_recipe_options_names_each(tmp_path):
    """--resume with recipe options that differ from the stored run's: refused in one
    message naming every one, stored and now."""
    run = _crossval_run(tmp_path / "r", tmp_path)
    with pytest.raises(VsentError) as e:
        _resumed(run, "--epochs", "3", "--lr", "0.5")
    assert str(e.value) == (
        f"--resume: {run} was started with other train.epochs, train.lr (train.epochs: stored "
        "30, now 3; train.lr: stored 0.002, now 0.5): give no recipe option to continue it as "
        "it was started, or --overwrite to start again")
    with pytest.raises(VsentError) as e:  # the preset's train, named once: by its one key
        _resumed(run, "--preset", "quick", "--epochs", "3")
    assert str(e.value).startswith(f"--resume: {run} was started with other train.epochs "
                                   "(train.epochs: stored 30, now 3): give"), str(e.value)
    # a --finetune-* option inside the stage that differs: the stage named once (mut60d X81)
    ft = ("--extra-train", "four", "--extra-schedule", "joint+finetune")
    run = _crossval_run(tmp_path / "ft", tmp_path, *ft)
    with pytest.raises(VsentError) as e:
        _resumed(run, "--preset", "quick", *ft, "--finetune-lr", "0.5")
    assert str(e.value).startswith(f"--resume: {run} was started with other finetune "
                                   "(finetune.lr: stored 0.0002, now 0.5): give"), str(e.value)


def test_crossval_resume_on_another_commands_run_is_refused_before_its_recipe(tmp_path):
    """mut60d X83: `crossval --resume` with recipe options on another command's run is
    refused by run_config, as the run's opening says it, before the options' recipe (a
    CaffeNet's ImageNet weights) is fetched."""
    run = _run(tmp_path / "p", {"command": "pcnn"})
    with pytest.raises(VsentError, match=re.escape(f"{run} holds a pcnn run, not a crossval")):
        _resumed(run, "--preset", "quick")


def test_crossval_resume_with_the_presets_own_lr_and_another_device(tmp_path):
    """--lr typed as the stored preset's lr makes no preset name (None), which is no
    difference; --device is where the resumed run trains."""
    from vsent.presets import CROSSVAL

    run = _crossval_run(tmp_path / "r", tmp_path)
    same = _resumed(run, "--lr", str(CROSSVAL["quick"]["train"].lr))
    assert (same.preset, same.train.lr) == ("quick", CROSSVAL["quick"]["train"].lr)
    assert _resumed(run, "--device", "cpu").train.device == "cpu"
    assert _resumed(run).train.device == "auto"


def test_crossval_resume_with_the_seed_of_a_run_recorded_before_train_seed_followed_it(
        tmp_path):
    """A config.json recorded before train.seed followed --seed (train.seed 0 beside seed 5)
    is continued by `--resume --seed 5`, as the run directory compares it; another seed is
    refused."""
    run = _crossval_run(tmp_path / "r", tmp_path, "--seed", "5")
    stored = json.loads((run / "config.json").read_text())
    stored["train"]["seed"] = 0
    (run / "config.json").write_text(json.dumps(stored))
    assert _resumed(run, "--seed", "5").seed == 5
    with pytest.raises(VsentError, match=r"was started with other seed, train\.seed "):
        _resumed(run, "--seed", "6")


@pytest.mark.parametrize("summary", [False, True])
def test_crossval_resume_with_an_option_needing_the_runs_mode_says_how(tmp_path, summary):
    """`--resume --head logistic` on a --train head run: the options are read on their own;
    the message says `--resume --out DIR` alone continues it (or shows a finished one)."""
    run = _crossval_run(tmp_path / "r", tmp_path, "--train", "head")
    if summary:
        (run / "summary.json").write_text("{}")
    with pytest.raises(VsentError) as e:
        _resumed(run, "--head", "logistic")
    then = "shows it again" if summary else "continues it as it was started"
    assert str(e.value).startswith(
        "--head logistic applies to --train head; with --resume, the options given are read "
        f"on their own, not with the run's: `--resume --out {run}` alone {then}"), str(e.value)
    # the mode typed (not the run's) is what the options are read with: no such advice
    with pytest.raises(VsentError) as e:
        _resumed(run, "--train", "all", "--head", "logistic")
    assert str(e.value) == "--head logistic applies to --train head"
    # the same with the run's --extra-schedule: --finetune-epochs alone needs it
    staged = _crossval_run(tmp_path / "s", tmp_path, "--extra-train", "four",
                           "--extra-schedule", "joint+finetune")
    with pytest.raises(VsentError) as e:
        _resumed(staged, "--finetune-epochs", "5")
    assert "; with --resume, the options given are read on their own" in str(e.value)
    # and with the run's --model (--arch needs caffenet) or --zero-shot (a prompt needs it)
    # (mut60d X86, X87)
    clip = ("--model", "clip/vsent-test-vit", "--init", "openai")
    for name, started, typed in (("cn", ("--model", "caffenet"), ("--arch", "fc7-2")),
                                 ("zs", (*clip, "--zero-shot"), (*clip, "--positive", "sun"))):
        run = _crossval_run(tmp_path / name, tmp_path, *started)
        with pytest.raises(VsentError) as e:
            _resumed(run, "--preset", "quick", *typed)
        assert "; with --resume, the options given are read on their own" in str(e.value), name
    # another command's run (refused when opened): no advice to continue it
    from vsent.cli.crossval import config_from_args

    ft = config_from_args(build_parser().parse_args(["finetune", "--preset", "quick", "--data",
                                                     str(tmp_path), "--train", "head"]))
    other = _run(tmp_path / "ft", {"command": "finetune", **ft.to_dict()})
    with pytest.raises(VsentError) as e:
        _resumed(other, "--head", "logistic")
    assert str(e.value) == "--head logistic applies to --train head"


@pytest.mark.parametrize("value", ["1", "0", "3", "null"])
def test_model_arg_num_classes_other_than_two_is_refused(value, capsys):
    """num_classes=1 (or 0, or null) is refused as 3 is: the task has two classes."""
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["crossval", "--model-arg", f"num_classes={value}"])
    assert e.value.code == 2
    assert capsys.readouterr().err.startswith(
        f"vsent: error: --model-arg num_classes={value}: the task sets num_classes (2: ")
    args = build_parser().parse_args(["finetune", "--model-arg", "a=1", "--model-arg",
                                      "num_classes=2", "--model-arg", "a=[2]"])
    assert args.model_arg == [("a", 1), ("num_classes", 2), ("a", [2])]


def test_a_training_option_given_as_zero_overrides_the_presets_value():
    """`--weight-decay 0` on quick (0.05) or `--momentum 0` on campos2015 (0.9): a zero typed
    is a value given, not left out."""
    from vsent.cli.common import train_overrides

    assert _cv_config("--weight-decay", "0").train.weight_decay == 0.0
    args = build_parser().parse_args(["crossval", "--momentum", "0", "--epochs", "0"])
    assert train_overrides(args) == {"momentum": 0.0, "epochs": 0}


def _stub_finetune(monkeypatch, tmp_path, result):
    import vsent.crossval

    calls = []
    model = tmp_path / "model.pt"
    model.write_text("x")

    def finetune(cfg, out, fold=None, resume=False, overwrite=False, progress=True):
        calls.append({"cfg": cfg, "out": out, "fold": fold, "resume": resume,
                      "overwrite": overwrite})
        return {"model": str(model), **result}

    monkeypatch.setattr(vsent.crossval, "finetune", finetune)
    return calls, model


def test_finetune_resume_alone_trains_the_stored_fold(tmp_path, monkeypatch, capsys):
    """`vsent finetune --resume --out DIR` continues the fold the run was started on (stored
    in its config.json); a --fold typed is the one used."""
    from vsent.cli.crossval import config_from_args

    cfg = config_from_args(build_parser().parse_args(
        ["finetune", "--preset", "quick", "--data", str(tmp_path)]))
    run = _run(tmp_path / "ft", {"command": "finetune", **cfg.to_dict(), "fold": 2})
    calls, model = _stub_finetune(monkeypatch, tmp_path, {})
    assert main(["finetune", "--resume", "--out", str(run), "--no-progress"]) == 0
    assert [(c["fold"], c["resume"], c["cfg"].model) for c in calls] == [(2, True, "smallcnn")]
    assert capsys.readouterr().out == f"model written to {model}\n"
    assert main(["finetune", "--resume", "--out", str(run), "--fold", "4"]) == 0
    assert calls[-1]["fold"] == 4
    assert main(["finetune", "--resume", "--out", str(run), "--fold", "0"]) == 0
    assert calls[-1]["fold"] == 0  # typed: the run refuses it, not the stored fold trained
    capsys.readouterr()
    model.unlink()  # a run directory copied without its model
    assert main(["finetune", "--resume", "--out", str(run), "--no-progress"]) == 0
    assert capsys.readouterr().out == (f"finished earlier, but its model is gone from {model} "
                                       "(--overwrite trains it again)\n")


def test_finetune_says_the_folds_and_the_fused_accuracies(tmp_path, monkeypatch, capsys):
    calls, model = _stub_finetune(monkeypatch, tmp_path, {
        "center": {"accuracy": 0.5}, "ten_crop": {"accuracy": 0.625},
        "fused_center": {"accuracy": 0.75}, "fused_ten_crop": {"accuracy": 0.875}})
    assert main(["finetune", "--preset", "quick", "--data", str(tmp_path), "--out",
                 str(tmp_path / "ft"), "--fold", "1", "--no-progress"]) == 0
    assert calls[0]["fold"] == 1 and calls[0]["resume"] is False
    assert capsys.readouterr().out == (
        f"model written to {model}; fold 1 accuracy 0.500 (centre), 0.625 (10-crop); "
        "fused 0.750 (centre), 0.875 (10-crop)\n")
    # --overwrite reaches the run (it starts again, deleting what --resume would keep)
    assert main(["finetune", "--preset", "quick", "--data", str(tmp_path), "--out",
                 str(tmp_path / "ft"), "--overwrite", "--no-progress"]) == 0
    assert (calls[-1]["overwrite"], calls[-1]["resume"]) == (True, False)


def test_models_takes_the_same_pattern_given_both_ways(capsys):
    """`vsent models smallcnn --pattern smallcnn`: one pattern, not two."""
    assert main(["models", "smallcnn", "--pattern", "smallcnn"]) == 0
    assert capsys.readouterr().out == "smallcnn\n"
    # '*' alone lists vsent's own models: the families (thousands of timm and open_clip
    # architectures) are named on stderr, not listed
    assert main(["models"]) == 0
    out, err = capsys.readouterr()
    listed = out.splitlines()
    assert "smallcnn" in listed and not [n for n in listed if "/" in n], listed[:5]
    assert "(and the families clip/<arch>, timm/<arch>: " in err and "zeroshot/" not in err, err


def test_crossval_resume_momentum_form_is_refused_only_on_a_run_with_results(tmp_path):
    """--resume --momentum-form caffe on a run stored before the option (it trains in torch's
    form): refused once the run holds results, naming both forms; a run with none yet (or a
    config.json without "command") is this command's: the same. The fine-tuning stage of
    --extra-schedule joint+finetune trains in the form typed too."""
    from conftest import resume_form_refusal
    from vsent.cli.common import check_resumed_momentum_form
    from vsent.cli.crossval import config_from_args

    run = _crossval_run(tmp_path / "r", tmp_path, "--preset", "campos2015", "--extra-train",
                        "four", "--extra-schedule", "joint+finetune")
    stored = json.loads((run / "config.json").read_text())
    del stored["train"]["momentum_form"]
    del stored["finetune"]["momentum_form"]
    del stored["command"]
    (run / "config.json").write_text(json.dumps(stored))
    assert _resumed(run, "--momentum-form", "torch").train.momentum_form == "torch"
    # no results yet: the run opening starts it anew, in the form typed (not refused here;
    # it went on in the stored run's torch form, silently)
    cfg = _resumed(run, "--momentum-form", "caffe")
    assert (cfg.train.momentum_form, cfg.finetune.momentum_form) == ("caffe", "caffe")
    (run / "fold1").mkdir()
    (run / "fold1" / "model.pt").write_text("x")
    with pytest.raises(VsentError) as e:
        _resumed(run, "--momentum-form", "caffe")
    assert f"vsent: error: {e.value}\n" == resume_form_refusal(run, "torch", "caffe")
    # --resume with no --momentum-form typed continues it in its own form: not refused
    assert _resumed(run).train.momentum_form == "torch"
    # without --resume (--overwrite starts again) the stored form is nobody's business
    argv = ["crossval", f"--out={run}", "--overwrite", "--momentum-form", "caffe"]
    args = build_parser().parse_args(argv)
    args.argv = argv
    check_resumed_momentum_form(args, config_from_args(args))
    # another command's run (with results, in torch's form) is not this one's to compare:
    # the run's opening refuses it, naming the command, not its momentum form
    (run / "config.json").write_text(json.dumps({**stored, "command": "pcnn"}))
    argv = ["crossval", f"--out={run}", "--resume", "--momentum-form", "caffe"]
    args = build_parser().parse_args(argv)
    args.argv = argv
    check_resumed_momentum_form(args, config_from_args(args))
    # nor is a folder with results but no config.json (no run: its opening says so, not an
    # unreadable config.json's "pass --overwrite"; mut60d M83)
    (run / "config.json").unlink()
    check_resumed_momentum_form(args, config_from_args(args))


def test_zero_shot_prompt_options_reach_the_config(tmp_path):
    """--prompts FILE, then --positive/--negative over it (each replacing its class alone,
    the other class keeping the file's or the defaults); a training option is refused."""
    from vsent.zeroshot import DEFAULT_PROMPTS

    prompts = tmp_path / "p.txt"
    prompts.write_text("positive: sun\nnegative: rain\n")

    def config(*options):
        return _cv_config("--model", "clip/vsent-test-vit", "--init", "openai", "--zero-shot",
                          *options)

    assert config().prompts is None and config().zero_shot is True
    assert config("--prompts", str(prompts)).prompts == {"positive": ["sun"],
                                                         "negative": ["rain"]}
    assert config("--prompts", str(prompts), "--negative", "gloom").prompts == {
        "positive": ["sun"], "negative": ["gloom"]}
    assert config("--negative", "gloom").prompts == {
        "positive": list(DEFAULT_PROMPTS["positive"]), "negative": ["gloom"]}
    with pytest.raises(VsentError, match=r"^--epochs: not with --zero-shot"):
        config("--epochs", "3")


def test_crossval_passes_its_run_options_to_the_run(tmp_path, monkeypatch, capsys):
    import vsent.crossval

    calls = []
    monkeypatch.setattr(vsent.crossval, "crossval",
                        lambda cfg, out, **kw: calls.append((cfg.model, out, kw)))
    out = str(tmp_path / "cv")
    assert main(["crossval", "--preset", "quick", "--data", str(tmp_path), "--out", out,
                 "--overwrite", "--no-progress"]) == 0
    assert calls == [("smallcnn", out, {"resume": False, "overwrite": True,
                                        "progress": False})]
    assert capsys.readouterr().out == (f"results in {out}/summary.md (summary.json, "
                                       "curves.png, predictions.csv, fold<k>/model.pt)\n")
    monkeypatch.setattr("vsent.progress.on_terminal", lambda progress: progress)  # a terminal
    for no_bars in ([], ["--no-progress"]):
        assert main(["crossval", "--preset", "quick", "--data", str(tmp_path), "--out", out,
                     "--overwrite", *no_bars]) == 0
        assert calls[-1][2]["progress"] is (not no_bars)  # bars unless --no-progress
    # --resume reaches the run (a recipe given: a folder with no run starts one)
    assert main(["crossval", "--preset", "quick", "--data", str(tmp_path), "--out",
                 str(tmp_path / "new"), "--resume", "--no-progress"]) == 0
    assert calls[-1][2] == {"resume": True, "overwrite": False, "progress": False}
    # a rank other than 0 (under torchrun) draws no bars and says nothing: rank 0's line is
    # the one (mut60d X97)
    monkeypatch.setattr("vsent.distributed.is_main", lambda: False)
    capsys.readouterr()
    assert main(["crossval", "--preset", "quick", "--data", str(tmp_path), "--out", out,
                 "--overwrite"]) == 0
    assert (calls[-1][2]["progress"], capsys.readouterr().out) == (False, "")


def test_a_ranks_user_error_is_the_commands_exit_status(tmp_path, monkeypatch, capsys):
    """Under torchrun, a rank other than 0 that met a user error records its exit status (2)
    in user_errors_from_rank0's list: crossval and finetune return it, not 0."""
    import contextlib

    import vsent.crossval
    from vsent import distributed

    @contextlib.contextmanager
    def a_ranks_error():  # as user_errors_from_rank0 after catching the rank's VsentError
        status: list[int] = []
        yield status
        status.append(2)

    monkeypatch.setattr(distributed, "user_errors_from_rank0", a_ranks_error)
    monkeypatch.setattr(vsent.crossval, "crossval", lambda cfg, out, **kw: None)
    _stub_finetune(monkeypatch, tmp_path, {})
    for command in ("crossval", "finetune"):
        assert main([command, "--preset", "quick", "--data", str(tmp_path), "--out",
                     str(tmp_path / command), "--no-progress"]) == 2, command
    capsys.readouterr()


@pytest.mark.parametrize("status, said", [(2, False), (1, True), (0, False)])
def test_nproc_says_a_crashed_process_not_a_user_error(tmp_path, monkeypatch, capsys, status,
                                                       said):
    """--nproc N: the launched processes' exit status is the command's; a crash (not 0, not
    the user error's 2, said by the processes themselves) adds one line saying so."""
    import vsent.crossval
    from vsent import distributed

    launched, asked = [], []
    monkeypatch.setattr(distributed, "wants_launch", lambda *a: asked.append(a) or True)
    monkeypatch.setattr(vsent.crossval, "check_launch",
                        lambda cfg, out, **kw: launched.append(kw))
    monkeypatch.setattr(distributed, "launch", lambda *a: asked.append(a) or status)
    argv = ["finetune", "--preset", "quick", "--data", str(tmp_path), "--out",
            str(tmp_path / "ft"), "--nproc", "2", "--fold", "3", "--device", "cpu",
            "--dist-backend", "gloo", "--overwrite"]
    assert main(argv) == status
    assert launched == [{"command": "finetune", "nproc": 2, "fold": 3, "resume": False,
                         "overwrite": True}]
    assert asked == [(2, "gloo", "cpu"), (2, "finetune", argv)]
    err = capsys.readouterr().err
    # the line says how to continue (mut60d X89)
    assert (f"vsent: a training process failed (exit status {status}, see above); what was "
            "written is kept: the same command with --resume instead of --overwrite "
            "continues it\n" in err) is said, err
    # crossval's launch is checked with no fold, and with its --resume (mut60d X90, X96)
    argv = ["crossval", "--preset", "quick", "--data", str(tmp_path), "--out",
            str(tmp_path / "cv"), "--nproc", "2", "--device", "cpu", "--dist-backend", "gloo",
            "--resume"]
    assert main(argv) == status
    assert launched[-1] == {"command": "crossval", "nproc": 2, "fold": None, "resume": True,
                            "overwrite": False}
    capsys.readouterr()


def test_refuse_no_run_counts_seed_as_no_recipe(tmp_path):
    """`--resume --seed 1` on an --out without a run: refused as --resume alone is (a
    misspelt --out would start the default recipe); a recipe option starts one."""
    from vsent.cli.common import refuse_no_run

    out = str(tmp_path / "typo")
    for extra, refused in ((["--seed", "1"], True), (["--skip-bad"], True),
                           (["--epochs", "2"], False)):
        argv = ["pcnn", "--resume", "--out", out, *extra]
        args = build_parser().parse_args(argv)
        args.argv = argv
        if refused:
            with pytest.raises(VsentError, match=rf"^--resume: {out} holds no run to continue"):
                refuse_no_run(args, "--epochs 2")
        else:
            refuse_no_run(args, "--epochs 2")


def test_comma_list_names_each_item_not_a_choice():
    from vsent.cli.common import comma_list

    parse = comma_list(str, choices=("svm", "softmax"))
    assert parse("svm,softmax") == ["svm", "softmax"]
    with pytest.raises(argparse.ArgumentTypeError) as e:
        parse("svm,knn,rf")
    assert str(e.value) == "knn, rf: choose from svm, softmax"


def test_the_default_resume_help_offers_device_only_to_a_command_with_it():
    from vsent.cli.common import add_run_args

    def resume_help(dest="resume", **kw):
        p = argparse.ArgumentParser()
        add_run_args(p, "runs/x", **kw)
        return next(a.help for a in p._actions if a.dest == dest)

    assert resume_help().endswith("give the options it was started with (--device may change)")
    assert resume_help(device=False).endswith("give the options it was started with")
    # a command's own help of --seed, --out, --resume is the one said (baselines', regions')
    for dest in ("seed", "out", "resume"):
        assert resume_help(dest, **{f"{dest}_help": "its own"}) == "its own", dest
    assert (resume_help("seed"), resume_help("out")) == ("random seed (default 0)",
                                                         "run directory (default runs/x)")


def test_a_damaged_run_config_leaves_the_options_own_error(tmp_path):
    """`--resume --head logistic` on a run whose config.json is no JSON: the option's error
    (the run's opening names the damage), not a crash reading the run for advice."""
    run = _run(tmp_path / "r", {})
    (run / "config.json").write_text("{not json")
    with pytest.raises(VsentError) as e:
        _resumed(run, "--head", "logistic")
    assert str(e.value) == "--head logistic applies to --train head"


def test_crossval_resume_with_data_naming_the_runs_folder_another_way(tmp_path):
    """--data naming the stored data through a link (or from another directory) is taken as
    typed: a path, not a recipe option refused as 'other data'."""
    (tmp_path / "data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data")
    run = _crossval_run(tmp_path / "r", tmp_path / "data")
    assert _resumed(run, "--data", str(tmp_path / "link")).data == str(tmp_path / "link")
    # another folder: taken here too (the run's opening compares the data it finds there)
    (tmp_path / "moved").mkdir()
    assert _resumed(run, "--data", str(tmp_path / "moved")).data == str(tmp_path / "moved")


def test_a_broken_pipe_ends_quietly_with_0_and_the_sigterm_handler_is_put_back(monkeypatch):
    """mut51a I5, I21, I10: a reader that stopped (`vsent predict ... | head`) ends the command
    with status 0 and nothing said (standard error closed: Python's own message at exit would
    be a traceback); the SIGTERM handler found before main is the one left after it; an
    interrupted predict that wrote to standard output has nothing to continue."""
    import argparse
    import io
    import os
    import signal

    import vsent.cli as cli

    def stopped_reader(args):
        raise BrokenPipeError(32, "Broken pipe")

    def mine(signum, frame):
        pass

    parser = build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    commands = next(a for a in parser._actions if a.dest == "command").choices
    # main() reads the words typed from sys.argv, less the program's name (mut54a I32)
    typed_words: list[list[str]] = []
    commands["models"].set_defaults(func=lambda args: typed_words.append(args.argv))
    monkeypatch.setattr(sys, "argv", ["vsent", "models", "res*"])
    assert cli.main() == 0 and typed_words == [["models", "res*"]]
    commands["models"].set_defaults(func=stopped_reader)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    before = signal.signal(signal.SIGTERM, mine)
    try:
        assert cli.main(["models"]) == 0
        assert err.closed
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
    piped = argparse.Namespace(resume=False, out=None, command="predict")
    assert cli.how_to_continue(piped) == ""
    # an --out that is a device (nor a file nor a folder) holds nothing to continue (mut59j J1)
    assert cli.how_to_continue(argparse.Namespace(resume=False, out=os.devnull,
                                                  command="explain")) == ""
    assert cli.how_to_continue(argparse.Namespace(resume=False, out=None, command="explain")) \
        == ": the same command with --resume continues it"
    # --overwrite given: the hint says to put --resume in its place (the two exclude each other)
    assert cli.how_to_continue(argparse.Namespace(resume=False, out=None, command="explain",
                                                  overwrite=True)) \
        == ": the same command with --resume instead of --overwrite continues it"


def test_main_runs_in_a_thread_other_than_the_main_one(capsys):
    """Only the main thread may set a signal handler: main() called from another thread (a
    program's worker) runs the command without taking SIGTERM (mut54a I44: a ValueError)."""
    import threading

    codes = []
    worker = threading.Thread(target=lambda: codes.append(main(["models", "smallcnn"])))
    worker.start()
    worker.join(60)
    assert codes == [0] and "smallcnn" in capsys.readouterr().out


def test_commands_that_write_nothing_to_continue_say_nothing_is_kept(tmp_path):
    """mut51a I3: a stopped export (written whole or not at all) keeps nothing to continue,
    though its --out exists (an earlier export); predict's rows there are kept."""
    import argparse

    from vsent.cli import KEEP_NOTHING, _kept

    out = tmp_path / "model.onnx"
    out.write_bytes(b"an earlier export")
    assert {"serve", "export", "card", "compare", "models", "cache"} == KEEP_NOTHING
    for command in sorted(KEEP_NOTHING):
        assert _kept(argparse.Namespace(command=command, out=str(out), resume=None)) == ""
    assert _kept(argparse.Namespace(command="predict", out=str(out), resume=None)) == (
        "; what was written is kept: the same command continues it")
    # predict's `--out -` (standard output) stopped before its options were checked: its rows
    # are kept, with no --resume hint (--resume is refused with --out -), as for out=None
    assert _kept(argparse.Namespace(command="predict", out="-", resume=False)) == (
        "; what was written is kept")


def test_a_finished_run_read_back_says_which_of_its_models_are_gone(tiny_cpu_run, tmp_path,
                                                                    capsys, caplog):
    """audit59: a finished run whose fold2/model.pt was deleted (or a copy made without its
    models) was read back as finished with no word of it; the next command loading the model
    failed then. It says which are gone, in one line, and still shows the results."""
    data, run = tiny_cpu_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    args = ["crossval", "--resume", "--out", str(copy), "--no-progress"]
    with caplog.at_level("WARNING", logger="vsent"):
        assert main(args) == 0
        assert warning_lines(caplog) == []  # every model there: nothing to say
        (copy / "fold2" / "model.pt").unlink()
        capsys.readouterr()
        assert main(args) == 0
    assert f"results in {copy}/summary.md" in capsys.readouterr().out
    assert warning_lines(caplog) == [
        f"{copy}: finished run without fold2/model.pt (deleted, or copied without it?): its "
        "results are read back, but commands that load it need the run made again "
        "(--overwrite)"]
