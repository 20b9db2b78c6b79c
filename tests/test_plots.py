"""Judge report PNGs redrawn from the shipped report JSON without retraining, checked against it."""

import json
import shutil
from pathlib import Path

import pytest

from autojudge_harness.plots import threshold_format
from autojudge_harness.replot import replot_report

SHIPPED = Path(__file__).resolve().parents[1] / "classifiers" / "smollm2-135m-vllm-draft-dt.report.json"


def test_the_shipped_report_redraws_from_its_json_and_features(tmp_path, monkeypatch):
    monkeypatch.chdir(SHIPPED.parents[1])   # the report names its features relative to the repository
    report = tmp_path / SHIPPED.name
    shutil.copy(SHIPPED, report)
    assert replot_report(report).read_bytes()[:4] == b"\x89PNG"
    tampered = json.loads(report.read_text())
    tampered["kinds"]["DT"]["val_auc"] = 0.99
    report.write_text(json.dumps(tampered))
    with pytest.raises(ValueError, match="DT refits to validation AUC 0.66"):
        replot_report(report)


def test_thresholds_get_the_digits_that_tell_them_apart():
    assert f"{0.455433:{threshold_format([0.45537, 0.455813])}}" == "0.455433"
    assert f"{0.4974:{threshold_format([0.46, 0.65])}}" == "0.497"
