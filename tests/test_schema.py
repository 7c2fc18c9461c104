"""pretrain.schema: the one reader of the `pretrain` summary, on every meta layout that exists."""
from pretrain.schema import pretrain_summary, summary, unmix_flag

V1 = {"method": "moco", "arch": "resnet18", "stem": "cifar", "version": "v2", "unmix": True,
      "mixing": {"final_form": {"enabled": True}, "first_form": {"enabled": False}},
      "dataset": "cifar10", "epoch": 3, "epochs": 1000, "config": "..."}
WANT = {"method": "moco", "unmix": True, "epochs": 1000, "dataset": "cifar10", "quick": False}


def test_v1_and_v2_and_converted_metas_give_the_same_summary():
    assert pretrain_summary(V1) == WANT
    assert pretrain_summary(dict(V1, pretrain=summary(V1))) == WANT                 # v2
    converted = {"format": "unmix-pretrain", "pretrain": WANT, "source_meta": {"method": "moco"}}
    assert pretrain_summary(converted) == WANT                                      # unmix convert
    # a converted file of an older converter: only scalar source meta, nested once more
    nested = {"source_meta": {"source_meta": {k: v for k, v in V1.items() if not isinstance(v, dict)}}}
    assert pretrain_summary(nested) == WANT


def test_unmix_flag_forms():
    assert unmix_flag(True) is True and unmix_flag(False) is False and unmix_flag(None) is None
    assert unmix_flag({"enabled": True, "prob": 0.5}) is True  # older v1 metas: the config block
    assert unmix_flag({"enabled": False}, {"enabled": True}) is True  # first form counts as Un-Mix
    assert unmix_flag("yes") is None
    old = dict(V1, unmix={"enabled": False}, mixing={"first_form": {"enabled": True}})
    assert pretrain_summary(old)["unmix"] is True


def test_foreign_and_odd_metas():
    assert pretrain_summary({"arch": "resnet50"}) is None and pretrain_summary(None) is None
    assert pretrain_summary(dict(V1, epochs=True))["epochs"] is None  # a bool is no epoch count
    assert pretrain_summary({"pretrain": {"method": "byol", "unmix": {"enabled": False}}}) == {
        "method": "byol", "unmix": False, "epochs": None, "dataset": None, "quick": False}


def test_a_quick_run_is_marked_in_every_layout():
    """`pretrain --quick` writes meta.quick (pretrain/quick.py); files from before it are full runs."""
    quick = dict(V1, epochs=5, quick={"quick": True, "epochs": 5, "full_epochs": 1000})
    want = dict(WANT, epochs=5, quick=True)
    assert pretrain_summary(quick) == want
    assert pretrain_summary(dict(quick, pretrain=summary(quick))) == want
    assert pretrain_summary({"pretrain": {k: v for k, v in want.items() if k != "quick"}})["quick"] is False
