"""Evaluation at scale (issue 16): image sources, the Dask engine against a plain loop, the
results store (resume, two writers), unreadable inputs, any torch module, statistics.

The networks are the real MobileNetV2 on bundled photographs (skipped when torch or the
evaluation assets are missing).  A module-wide LocalCluster of 2 worker processes is
shared by the Dask tests (one start-up)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from refcodec import evaluation as ev

INSTALL = "evaluation assets not installed: run tools/install_eval_assets.sh"
ROOT = Path(__file__).resolve().parents[1]
TIMINGS = ("encode_s", "decode_s")
#: the small run of these tests: 3 bundled inputs, MobileNetV2 conv4, 2 configs x 2 QPs
SMALL = dict(networks=("mobilenet_v2",), splits={"mobilenet_v2": ["conv4"]}, qps=(22, 42),
             configs=("baseline", "uniform"), images=3, progress=False, bootstrap=200)


def _needs_mobilenet():
    pytest.importorskip("torch", reason="needs torch: pip install -e '.[torch]'")
    pytest.importorskip("skimage", reason=INSTALL)
    from refcodec.models import assets
    if not assets.have("mobilenet_v2"):
        pytest.skip(INSTALL)


def _strip(result):
    """What must not depend on the engine: every job row but its timings, the summary
    without timings, the statistics, the BD-rates and Fig. 5."""
    jobs = [{k: v for k, v in r.items() if k not in TIMINGS} for r in result["jobs"]]
    summary = [{k: v for k, v in s.items() if not k.endswith("_s_per_image")}
               for s in result["summary"]]
    return jobs, summary, result["statistics"], result["bd_rates"], result["fig5"]


@pytest.fixture(scope="module")
def reference():
    """The small run in a plain loop in this process."""
    _needs_mobilenet()
    return ev.evaluate(engine="serial", **SMALL)


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("distributed", reason="needs dask[distributed]")
    _needs_mobilenet()
    import logging
    from distributed import Client, LocalCluster
    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", scheduler_kwargs={"dashboard": False},
                      silence_logs=logging.ERROR)
    client = Client(lc)
    yield lc, client
    client.close()
    lc.close()


# -- image sources --------------------------------------------------------------------

def _png(path: Path, seed: int, shape=(40, 56, 3)):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return arr


def test_folder_list_and_imagenet_layout(tmp_path):
    pytest.importorskip("PIL")
    a = _png(tmp_path / "plain" / "b" / "x.png", 1)
    _png(tmp_path / "plain" / "a.PNG", 2)
    (tmp_path / "plain" / "notes.txt").write_text("not an image")
    refs = ev.folder_images(tmp_path / "plain")
    assert [r.key for r in refs] == ["a.PNG", "b/x.png"]          # sorted relative paths
    assert [r.index for r in refs] == [0, 1] and all(r.label is None for r in refs)
    assert np.array_equal(ev.load_image(refs[1]), a)               # loaded only on demand
    # ImageNet validation layout: class folders named by WordNet id give the labels
    _png(tmp_path / "val" / "n01440764" / "ILSVRC2012_val_00000293.JPEG", 3)
    _png(tmp_path / "val" / "n01443537" / "ILSVRC2012_val_00000236.JPEG", 4)
    refs = ev.folder_images(tmp_path / "val")
    labels = [r.label for r in refs]
    # a two-class subset has no standard index order unless darknet's list is installed
    assert labels in (["n01440764", "n01443537"], [0, 1])
    # an explicit labels file
    (tmp_path / "labels.txt").write_text("a.PNG 7\nx.png 3\n")
    refs = ev.folder_images(tmp_path / "plain", labels=tmp_path / "labels.txt")
    assert [r.label for r in refs] == [7, 3]
    # a list file: relative to its folder, comments, a tab label, duplicates once
    (tmp_path / "list.txt").write_text("# inputs\nplain/b/x.png\t5\n\nplain/a.PNG\n"
                                       "plain/b/x.png\n")
    refs = ev.resolve_images(tmp_path / "list.txt", "user")
    assert [(r.key, r.label) for r in refs] == [("plain/b/x.png", 5), ("plain/a.PNG", None)]
    # the bundled default: references only, same keys as the image set
    refs = ev.resolve_images(4, "mobilenet_v2")
    assert [r.key for r in refs] == [im.key for im in ev.image_set(4)]
    with pytest.raises(ev.EvaluationError, match="no such folder"):
        ev.resolve_images(tmp_path / "missing", "user")
    with pytest.raises(ev.EvaluationError, match="no image files"):
        ev.folder_images(_empty(tmp_path))


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_bundled_set_has_more_than_500_inputs_with_the_old_36_first():
    pytest.importorskip("skimage", reason=INSTALL)
    specs = ev.image_set_specs(len(ev.CORE_PHOTOS) * len(ev.VARIANTS))
    assert len(specs) >= 500 and len({(p, v) for p, v, _ in specs}) == len(specs)
    assert [f"{p}/{v}" for p, v, _ in specs[:36]] == [im.key for im in ev.image_set(36)]
    # a scaled variant: 50 % of each side, mirrored
    photo = ev.load_photo("chelsea")                                  # 300 x 451
    img = ev.apply_variant(photo, ev.VARIANTS["scale50-flip"])
    assert img.shape == (150, 226, 3)


def test_unreadable_images_are_skipped_and_reported(tmp_path, capsys):
    _needs_mobilenet()
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, name in enumerate(("chelsea", "coffee")):
        Image.fromarray(ev.load_photo(name)).save(folder / f"{i}_{name}.png")
    (folder / "2_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    good = (folder / "0_chelsea.png").read_bytes()
    (folder / "3_truncated.png").write_bytes(good[:len(good) // 3])
    from refcodec.cli import main
    out = tmp_path / "out"
    code = main(["eval", "--networks", "mobilenet_v2", "--splits", "mobilenet_v2:conv4",
                 "--qps", "42", "--configs", "baseline", "--images", str(folder),
                 "--engine", "serial", "--no-progress", "--bootstrap", "20", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert "skipped 2_broken.jpg: cannot read the image" in captured.err
    assert "skipped 3_truncated.png" in captured.err
    assert "2 unreadable inputs skipped" in captured.out
    result = json.loads((out / "results.json").read_text())
    assert [j["image"] for j in result["jobs"]] == ["0_chelsea.png", "1_coffee.png"]
    assert [s["image"] for s in result["skipped"]] == ["2_broken.jpg", "3_truncated.png"]
    assert all(s["reason"] for s in result["skipped"])
    assert "## Skipped inputs" in (out / "README.md").read_text()


# -- the engine -----------------------------------------------------------------------

def test_local_cluster_of_two_workers_gives_the_single_process_results(reference, cluster):
    lc, client = cluster
    messages = []
    two = ev.evaluate(engine="dask", scheduler=lc.scheduler_address, dashboard=False,
                      log=messages.append, **SMALL)
    assert two["meta"]["engine"] == "dask" and two["meta"]["workers"] == 2
    assert messages and messages[0].startswith("dask: scheduler tcp://")
    assert len(reference["jobs"]) == 12
    assert _strip(two) == _strip(reference)
    # both workers ran jobs and each loaded the network once (worker-side cache)
    loaded = client.run(lambda: sorted(__import__(
        "refcodec.evaluation.jobs", fromlist=["_STATE"])._STATE.get("networks", {})))
    assert all(v == ["mobilenet_v2"] for v in loaded.values())


def test_killed_worker_and_interrupted_run_resume_to_the_same_results(reference, cluster,
                                                                       tmp_path):
    lc, client = cluster
    store = tmp_path / "store.sqlite"
    pids = list(client.run(os.getpid).values())
    seen = []

    def kill_then_interrupt(job, result):
        seen.append(job.key)
        if len(seen) == 3:
            os.kill(pids[0], signal.SIGKILL)       # a worker process dies mid-run
        if len(seen) == 7:
            raise KeyboardInterrupt                # then the whole run is interrupted
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate(engine="dask", scheduler=lc.scheduler_address, dashboard=False,
                    store=store, on_result=kill_then_interrupt, **SMALL)
    with ev.ResultStore(store) as s:
        assert s.count() == 7 and s.integrity() == "ok"
    with pytest.raises(ev.EvaluationError, match="resume it"):
        ev.evaluate(engine="serial", store=store, **SMALL)
    resumed_jobs = []
    done = ev.evaluate(engine="dask", scheduler=lc.scheduler_address, dashboard=False,
                       store=store, resume=True,
                       on_result=lambda job, result: resumed_jobs.append(job.key), **SMALL)
    assert len(resumed_jobs) == 5 and not set(resumed_jobs) & set(seen)
    assert _strip(done) == _strip(reference)
    with ev.ResultStore(store) as s:
        assert s.count() == 12
        runs = s.runs()
    assert [r["planned"] for r in runs] == [12, 12]
    # the nanny replaced the killed worker
    deadline = time.time() + 60
    while len(client.scheduler_info(n_workers=-1)["workers"]) < 2 and time.time() < deadline:
        time.sleep(0.5)
    assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2


def test_report_of_a_partial_store(reference, tmp_path):
    store = tmp_path / "partial.sqlite"

    count = []

    def stop(job, result):
        count.append(job)
        if len(count) == 6:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate(engine="serial", store=store, on_result=stop, **SMALL)
    out = tmp_path / "report"
    from refcodec.cli import main
    assert main(["eval", "--report-only", str(store), "-o", str(out), "--bootstrap",
                 "50"]) == 0
    text = (out / "README.md").read_text()
    assert "6 jobs of 12 planned: a partial run" in text
    assert "## BD-rate with paired bootstrap intervals" in text
    assert (out / "intervals_mobilenet_v2.png").stat().st_size > 0
    stats = (out / "statistics.csv").read_text().splitlines()
    assert stats[0].startswith("network,split,config,qp,images,bits_per_element")
    # the plain loop runs input by input: inputs 0 (4 jobs) and 1 (2 jobs) are done
    assert [line.split(",")[4] for line in stats[1:]] == ["2", "2", "1", "1"]


def test_store_is_safe_under_two_concurrent_writers(tmp_path):
    """Two processes insert overlapping jobs into one store at the same time."""
    store = tmp_path / "shared.sqlite"
    ev.ResultStore(store).close()
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from refcodec.evaluation.store import ResultStore
        first, last = int(sys.argv[1]), int(sys.argv[2])
        with ResultStore({str(store)!r}) as s:
            run = s.begin_run({{"writer": first}}, last - first)
            for i in range(first, last):
                row = {{"network": "n", "split": "s", "config": "c", "qp": 22,
                        "image": f"im{{i}}", "image_index": i, "bytes": i, "elements": 1,
                        "embedding_pristine": [float(i)] * 4}}
                s.add(f"k{{i}}", row, run)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(a), str(b)])
             for a, b in ((0, 400), (200, 600))]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with ev.ResultStore(store) as s:
        assert s.integrity() == "ok" and s.count() == 600
        rows = s.rows()
    assert sorted(r["image_index"] for r in rows) == list(range(600))     # none twice
    assert all(r["bytes"] == r["image_index"] and
               list(r["embedding_pristine"]) == [r["image_index"]] * 4 for r in rows)


def test_store_refuses_another_network_or_configuration_of_the_same_name(tmp_path):
    with ev.ResultStore(tmp_path / "s.sqlite") as s:
        s.check_network("net", "a" * 64, {})
        s.check_network("net", "a" * 64, {})
        with pytest.raises(ev.EvaluationError, match="other|weights"):
            s.check_network("net", "b" * 64, {})
        s.check_config("c", {"qp": 1})
        with pytest.raises(ev.EvaluationError, match="another name"):
            s.check_config("c", {"qp": 2})
        # another folder with the same relative paths: its rows would be of other images
        s.check_images("net", [("a.png", "/x/a.png"), ("b.png", "/x/b.png")])
        s.check_images("net", [("b.png", "/x/b.png"), ("c.png", "/x/c.png")])
        with pytest.raises(ev.EvaluationError, match="stored from /x/a.png"):
            s.check_images("net", [("a.png", "/y/a.png")])
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ev.EvaluationError, match="not a results store"):
        ev.ResultStore(tmp_path / "junk.sqlite")


def test_progress_line_has_rate_and_eta():
    import io
    buf = io.StringIO()
    p = ev.Progress(10, done=2, stream=buf)
    p.t0 -= 4.0                         # 4 s elapsed
    p.update(2)
    line = buf.getvalue().strip()
    assert line.startswith("4/10 jobs (40 %), 0.50 jobs/s")
    assert line.endswith("ETA 0:12")


# -- any torch module, named architectures --------------------------------------------

def test_any_torch_module_split_by_submodule_name(tmp_path):
    """A torch module given in Python, split with torch.fx at a submodule; a skip
    connection around the cut makes two tensors cross it, both coded."""
    _needs_mobilenet()
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    images = [ev.load_photo("chelsea")[:64, :64], ev.load_photo("coffee")[:64, :64]]
    r = ev.evaluate(model=net, split=["1", "3"], images=images, qps=(22,), engine="serial",
                    model_name="tiny", preprocess=lambda im: torch.from_numpy(
                        im.astype(np.float32) / 255).permute(2, 0, 1)[None],
                    progress=False, bootstrap=10)
    assert [s["split"] for s in r["summary"]] == ["1", "3"]
    assert r["summary"][0]["elements_per_image"] == 8 * 32 * 32
    assert all(0 <= s["classification_fidelity"] <= 1 and s["softmax_kl"] >= 0
               for s in r["summary"])

    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.head = nn.Conv2d(3, 4, 3, 1, 1), nn.Conv2d(4, 4, 3, 1, 1), \
                nn.Linear(4, 3)

        def forward(self, x):
            y = self.a(x)
            z = self.b(y) + y                      # y crosses a cut after b
            return self.head(z.mean((2, 3)))
    model = Skip().eval()
    split = ev.fx_split(model, "b")
    x = torch.rand(1, 3, 16, 16)
    feature = split.head(x)
    assert isinstance(feature, dict) and len(feature) == 2
    assert torch.equal(split.tail(feature), model(x))
    with pytest.raises(ev.EvaluationError, match="neither a submodule"):
        ev.fx_split(model, "nope")


def test_module_given_in_python_matches_the_built_in_split():
    """MobileNetV2 given as a plain torch module, split at submodule features.13 (a block
    with a residual addition, which belongs to it): exactly the rows of the built-in conv4
    split (features.0..13 in the head)."""
    _needs_mobilenet()
    from refcodec import models
    kw = dict(images=2, qps=(32,), progress=False, bootstrap=0, engine="serial")
    given = ev.evaluate(model=models.load_mobilenet_v2(), split="features.13",
                        model_name="mine", **kw)
    builtin = ev.evaluate(networks=("mobilenet_v2",), splits={"mobilenet_v2": ["conv4"]},
                          **kw)

    def rows(r):
        return [{k: v for k, v in j.items() if k not in TIMINGS + ("network", "split")}
                for j in r["jobs"]]
    assert rows(given) == rows(builtin) and len(rows(given)) == 2
    assert given["summary"][0]["elements_per_image"] == 96 * 14 * 14


def test_named_architecture_with_a_local_weights_file(tmp_path):
    """--model ARCH:WEIGHTS: a torchvision-named state_dict loads strictly (here random
    weights: a shape and loading check, no fidelity claim)."""
    _needs_mobilenet()
    import torch
    torch.manual_seed(0)
    model = ev.ARCHITECTURES["resnet18"]()
    weights = tmp_path / "resnet18.pth"
    torch.save(model.state_dict(), weights)
    spec = ev.named_network(f"r18=resnet18:{weights}", ["layer2"])
    assert spec.name == "r18" and spec.fingerprint == ev.networks.state_fingerprint(model)
    keys = set(model.state_dict())
    assert {"conv1.weight", "layer1.0.bn1.running_mean", "layer2.0.downsample.0.weight",
            "fc.bias"} <= keys and len(keys) == 122           # torchvision's resnet18 keys
    split = spec.payload.split("layer2")
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        f = split.head(x)
        assert tuple(f.shape) == (1, 128, 28, 28)
        assert torch.equal(split.tail(f), spec.payload.model(x))
    torch.save({"fc.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ev.EvaluationError, match="do not fit resnet18"):
        ev.named_network(f"resnet18:{tmp_path / 'bad.pth'}", ["layer2"])
    with pytest.raises(ev.EvaluationError, match="no such weights file"):
        ev.named_network(f"resnet18:{tmp_path / 'none.pth'}", ["layer2"])


# -- statistics -----------------------------------------------------------------------

def test_statistics_intervals_and_paired_bd_rate(reference):
    pts = reference["statistics"]["points"]
    assert len(pts) == 4
    for p in pts:
        for m in ("top1", "top5_agreement", "softmax_kl", "logit_mse", "retrieval"):
            assert p[f"{m}_lo"] <= p[m] <= p[f"{m}_hi"]
    by = {(s["config"], s["qp"]): s for s in reference["summary"]}
    for p in pts:
        s = by[(p["config"], p["qp"])]
        assert p["top1"] == s["classification_fidelity"]
        assert p["retrieval"] == pytest.approx(s["retrieval_fidelity"], abs=1e-12)
        assert p["bits_per_element"] == pytest.approx(s["bits_per_element"])
    bd = {r["task"]: r for r in reference["statistics"]["bd_rates"]}
    point = {r["task"]: r for r in reference["bd_rates"]}
    for task, r in bd.items():
        assert r["bootstrap"] == 200 and r["images"] == 3
        assert r["bd_rate_percent"] == point[task]["bd_rate_percent"]
        if r["ci_lo"] is not None:
            assert r["ci_lo"] <= r["ci_hi"]


def test_bootstrap_is_paired_and_seeded():
    """'half' needs half the bytes of the baseline for the same fidelity on every input:
    paired resamples keep that, so every resampled BD-rate is -50 %; the per-point
    intervals vary with the seed."""
    rows = []
    for cfg, scale in (("baseline", 2), ("half", 1)):
        for qp, share in zip((12, 22, 32, 42), (0.95, 0.9, 0.7, 0.4)):
            for i in range(40):
                rows.append({"network": "n", "split": "s", "config": cfg, "qp": qp,
                             "image": f"i{i}", "image_index": i, "elements": 100,
                             "bytes": (60 - qp) * scale * (1 + i % 3),
                             "top1_pristine": 1,
                             "top1_reconstructed": 1 if i < share * 40 else 2,
                             "top5_agreement": 1.0})
    a = ev.bd_rate_intervals(rows, bootstrap=300, seed=5)
    assert a == ev.bd_rate_intervals(rows, bootstrap=300, seed=5)
    (r,) = a
    assert r["bd_rate_percent"] == pytest.approx(-50.0)
    assert r["ci_lo"] == pytest.approx(-50.0) and r["ci_hi"] == pytest.approx(-50.0)
    assert r["bootstrap_failed"] == 0
    p5 = ev.point_statistics(rows, bootstrap=300, seed=5)
    p6 = ev.point_statistics(rows, bootstrap=300, seed=6)
    # the continuous fidelity: the same KL on every input at half the bytes, -50 % in every
    # resample; 'shifted' has twice the KL of the baseline on every input
    kl_rows = []
    for r in rows:
        kl, mse = 10 ** (r["qp"] / 10 - 6), 10 ** (r["qp"] / 10 - 5)   # falls with the rate
        kl_rows.append(dict(r, softmax_kl=kl, logit_mse=mse))
        if r["config"] == "half":
            kl_rows.append(dict(r, config="shifted", softmax_kl=2 * kl, logit_mse=mse))
    got = {(r["config"], r["task"]): r for r in ev.bd_rate_intervals(kl_rows, bootstrap=100,
                                                                      seed=5)}
    half = got[("half", "classification_kl")]
    assert half["bd_rate_percent"] == pytest.approx(-50.0)
    assert half["ci_lo"] == pytest.approx(-50.0) and half["ci_hi"] == pytest.approx(-50.0)
    assert got[("half", "classification_logit_mse")]["bd_rate_percent"] == pytest.approx(-50.0)
    assert got[("shifted", "classification_kl")]["bd_rate_percent"] > \
        got[("half", "classification_kl")]["bd_rate_percent"]
    assert p5 == ev.point_statistics(rows, bootstrap=300, seed=5) and p5 != p6
    assert all(p["top1_lo"] <= p["top1"] <= p["top1_hi"] for p in p5)
    # the same resamples for every point of a split, other ones for another split
    assert np.array_equal(ev.stats.resamples(40, 5, 0, "n", "s"),
                          ev.stats.resamples(40, 5, 0, "n", "s"))
    assert not np.array_equal(ev.stats.resamples(40, 5, 0, "n", "s"),
                              ev.stats.resamples(40, 5, 0, "n", "t"))


def test_classification_measures():
    lp = np.array([2.0, 1.0, 0.0, -1.0, -3.0, 0.5])
    same = ev.classification_measures(lp, lp.copy())
    assert same["softmax_kl"] == 0.0 and same["logit_mse"] == 0.0
    assert same["top1_pristine"] == same["top1_reconstructed"] == 0
    lr = lp + np.array([0.0, 3.0, 0, 0, 0, 0])
    m = ev.classification_measures(lp, lr)
    p = np.exp(lp) / np.exp(lp).sum()
    q = np.exp(lr) / np.exp(lr).sum()
    assert m["softmax_kl"] == pytest.approx(float(np.sum(p * np.log(p / q))), rel=1e-12)
    assert m["logit_mse"] == pytest.approx(9.0 / 6)
    assert m["top1_reconstructed"] == 1


# -- a real run killed from outside ---------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("engine, sig", [("serial", signal.SIGKILL), ("dask", signal.SIGTERM)])
def test_cli_run_killed_from_outside_resumes(reference, tmp_path, engine, sig):
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "tools" / "eval.py"), "--networks", "mobilenet_v2",
           "--splits", "mobilenet_v2:conv4", "--qps", "22", "42", "--configs", "baseline",
           "uniform", "--images", "3", "--engine", engine, "-j", "2", "--no-dashboard",
           "--no-progress", "--bootstrap", "200", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    store = out / "store.sqlite"
    deadline = time.time() + 240
    n = 0
    while time.time() < deadline and proc.poll() is None:
        if store.is_file():
            try:
                with ev.ResultStore(store, create=False) as s:
                    n = s.count()
            except ev.EvaluationError:
                n = 0
            if n >= 4:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and b"--resume" in err
    with ev.ResultStore(store, create=False) as s:
        before = s.count()
        assert 4 <= before < 12 and s.integrity() == "ok"
    done = subprocess.run(cmd + ["--resume"], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads((out / "results.json").read_text())
    jobs = [{k: v for k, v in r.items() if k not in TIMINGS} for r in result["jobs"]]
    ref = json.loads(json.dumps(_strip(reference)[0]))
    assert jobs == ref
