"""Which detailed models a command means (``--models``): the shipped family (or one split of it), or a model file."""
from __future__ import annotations

from .spec import load_model_file

__all__ = ["load_cell_specs", "parse_template_args"]



def load_cell_specs(models: str, template: str | None, template_name: str | None, mechanisms: str | None,
                    max_models: int | None = None, template_args=None, preload=None):
    """(specs, splits) from 'family', 'family:train', 'family:unseen', a model JSON file or a folder
    of them (`noble_neuron.detailed.spec.load_model_file`: template, constructor arguments, preloads and
    mechanisms come from the file or from these arguments). Splits not given are None."""
    if models.startswith("family"):
        from .pv_family import load_family

        split = models.split(":", 1)[1] if ":" in models else None
        family = load_family(split=split)
        family = family[:max_models] if max_models else family
        return [m.cell_spec() for m in family], [m.split for m in family]
    specs, splits = load_model_file(models, template=template, template_name=template_name, mechanisms=mechanisms,
                                    template_args=template_args, preload=preload)
    return (specs[:max_models], splits[:max_models]) if max_models else (specs, splits)


def parse_template_args(values: list[str] | None):
    """--template-args: numbers where they parse as numbers (hoc $1), strings otherwise ($s1)."""
    if values is None:
        return None
    out = []
    for v in values:
        try:
            out.append(float(v) if any(c in v for c in ".eE") else int(v))
        except ValueError:
            out.append(v)
    return out
