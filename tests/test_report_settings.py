"""The report's nominal settings per protocol are what `unmix finetune` records for the protocol's
unmodified config: otherwise a full run of the protocol would be tabulated as "other settings"
(and lose its published rows), or a changed config would pass as the protocol's own."""
from __future__ import annotations

import pytest

from transfer.report import settings


@pytest.mark.slow
def test_nominal_settings_are_what_finetune_records_for_each_protocol_config():
    from transfer.detection import finetune, protocols

    protocols.register_modules()
    assert set(settings.NOMINAL) == set(protocols.PROTOCOLS)
    for name in protocols.PROTOCOLS:
        cfg = protocols.load_config(name)
        recorded = finetune.effective(cfg, {"cfg_options": {}, "quick": None})
        assert settings.normalise(recorded, None) == settings.NOMINAL[name], name
        assert settings.variant(name, settings.key(recorded, None), []).nominal, name
        # the same config with one --cfg-options key is another table
        other = finetune.effective(cfg, {"cfg_options": {"train_cfg.max_epochs": 1}, "quick": None})
        assert not settings.variant(name, settings.key(other, None), []).nominal, name
