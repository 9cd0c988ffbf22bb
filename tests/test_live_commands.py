"""Every `mke-live` command the export report prints ("Run them live") is one mke-live accepts: its
arguments parse, its sources resolve, and they give what the task's model takes — mke-live's own
checks before a model is loaded, run on each command of each task's default config."""
from __future__ import annotations

import shlex

import pytest

from mke.runtime.cli import _check_args, build_parser
from mke.runtime.live.inputs import InputBuilder
from mke.runtime.live.sources import SourceContext, open_input
from mke.runtime.spec import ModelSpec, OutputSpec
from mke.train.config import resolve_config
from mke.train.tasks import get_task, registered_tasks


def _spec(task, cfg) -> ModelSpec:
    inputs = [task.input_spec(cfg, name) for name in task.input_kinds]
    classes = ["a", "b"]  # what the sources must give depends on the inputs alone
    return ModelSpec(task=task.name, kind=task.kind, classes=classes, colors=task.colors(len(classes)),
                     inputs=inputs, outputs=[OutputSpec("logits", task.output_shape(inputs, len(classes)))])


@pytest.mark.parametrize("name", sorted(registered_tasks()))
def test_each_printed_live_command_is_accepted(name, tmp_path):
    task = get_task(name)
    cfg = resolve_config(name, None, [])
    if "cache_dir" in cfg["data"]:  # a cache of this checkout's data, if any, adds its recording's command
        cfg["data"]["cache_dir"] = str(tmp_path)
    model = tmp_path / "student.onnx"
    commands = task.live_commands(cfg, model)
    if not task.live_inputs:
        assert commands == []  # the report says no source gives these inputs, and prints no command
        return
    assert commands, f"{name} declares live inputs but prints no command"
    spec = _spec(task, cfg)
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "mke-live" and argv[1] == str(model)
        args = build_parser().parse_args(argv[1:])
        input_source, audio_source = _check_args(args)
        source = open_input(input_source, audio_source, SourceContext.for_model(spec, real_time=False))
        InputBuilder(spec, str(model)).check_source(source, str(model))  # gives what the model takes
