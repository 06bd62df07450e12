"""The machine a measurement ran on: CPU model, cores, memory, accelerator and package versions.

Every report of ``composer profile``, ``composer sweep`` and the benchmarks names its machine, since figures
from different machines (or from one machine under different load) do not compare.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import psutil

from composer import __version__
from composer.config import defaults
from composer.errors import ModelError
from composer.measure.report import markdown_table
from composer.model.providers import runtime

__all__ = ["Machine", "describe_machine"]

# Distribution names, in the order the report lists them, after composer's own version (its distribution is
# composer-repaint; "composer" on the package index is another project).
_PACKAGES = ("numpy", "opencv-python-headless", "opencv-python", "onnxruntime", "onnxruntime-gpu",
             "av", "matplotlib")
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass(frozen=True)
class Machine:
    """A description of this machine, resolved once.

    Attributes:
        cpu: The CPU model as the kernel names it.
        cores: Cores this process may use (what composer sizes its threads by).
        logical: Logical CPUs of the machine.
        memory: Total memory in bytes.
        gpus: One entry per GPU that nvidia-smi lists ("name, memory"); empty without one.
        providers: ONNX Runtime execution providers available in this environment.
        system: Operating system and kernel.
        python: Python version.
        packages: Installed versions of the packages composer's speed depends on.
    """

    cpu: str
    cores: int
    logical: int
    memory: int
    gpus: tuple[str, ...]
    providers: tuple[str, ...]
    system: str
    python: str
    packages: dict[str, str] = field(default_factory=dict)

    @property
    def accelerator(self) -> str:
        """The accelerator in words: the GPUs, and whether ONNX Runtime can use them."""
        usable = [p.removesuffix("ExecutionProvider") for p in self.providers if p in _GPU_PROVIDERS]
        if not self.gpus:
            return "none" if not usable else f"none found (onnxruntime offers {', '.join(usable)})"
        runtime = f"onnxruntime: {', '.join(usable)}" if usable else "onnxruntime: CPU only"
        return f"{'; '.join(self.gpus)} ({runtime})"

    def summary(self) -> str:
        """One line: CPU, cores, memory and accelerator."""
        return (f"{self.cpu}, {self.cores} usable cores ({self.logical} logical), "
                f"{self.memory / 2**30:.0f} GiB, accelerator: {self.accelerator}")

    def markdown(self) -> str:
        """A two-column Markdown table of everything known about the machine."""
        rows = [
            ("CPU", self.cpu),
            ("cores", f"{self.cores} usable ({self.logical} logical)"),
            ("memory", f"{self.memory / 2**30:.1f} GiB"),
            ("accelerator", self.accelerator),
            ("system", self.system),
            ("python", self.python),
            ("packages", ", ".join(f"{name} {version}" for name, version in self.packages.items())),
        ]
        return "\n".join(markdown_table(("machine", ""), rows, "ll"))

    def to_json(self) -> dict[str, object]:
        """The description as plain JSON values."""
        return {
            "cpu": self.cpu, "cores": self.cores, "logical": self.logical, "memory_bytes": self.memory,
            "gpus": list(self.gpus), "providers": list(self.providers), "accelerator": self.accelerator,
            "system": self.system, "python": self.python, "packages": dict(self.packages),
        }


def describe_machine() -> Machine:
    """Describe this machine (reads /proc/cpuinfo, asks nvidia-smi if it is installed)."""
    return Machine(
        cpu=_cpu_model(),
        cores=defaults.usable_cores(),
        logical=os.cpu_count() or 1,
        memory=psutil.virtual_memory().total,
        gpus=_nvidia_gpus(),
        providers=_providers(),
        system=f"{platform.system()} {platform.release()} ({platform.machine()})",
        python=platform.python_version(),
        packages=_versions(),
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _nvidia_gpus() -> tuple[str, ...]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        done = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ()
    if done.returncode != 0:
        return ()
    return tuple(line.strip() for line in done.stdout.splitlines() if line.strip())


def _providers() -> tuple[str, ...]:
    try:
        ort = runtime()
    except ModelError:  # none or several ONNX Runtime builds: the versions say which
        return ()
    return tuple(ort.get_available_providers())


def _versions() -> dict[str, str]:
    versions = {"composer": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def main(argv: list[str] | None = None) -> None:
    """``python -m composer.measure.machine [--report FILE]``: print the machine, or write it as a report section."""
    import argparse

    from composer.measure.report import write_section

    parser = argparse.ArgumentParser(prog="python -m composer.measure.machine", description=main.__doc__)
    parser.add_argument("--report", type=str, help="write the table as section 'machine' of this Markdown file")
    args = parser.parse_args(argv)
    table = describe_machine().markdown()
    if args.report:
        write_section(Path(args.report), "machine", "## Machine\n\n" + table)
    else:
        print(table)


if __name__ == "__main__":  # pragma: no cover - used by scripts/results
    main()
