"""PNG figures of experiment results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: CI and servers have no screen
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def bars(rows: dict[str, dict[str, Any]], path: Path, title: str) -> Path:
    """Success rate (with its 95 % interval) and average steps, one bar per condition."""
    names = list(rows)
    success = [rows[n]["success_rate"] for n in names]
    lows = [rows[n]["success_rate"] - rows[n]["success_ci95"][0] for n in names]
    highs = [rows[n]["success_ci95"][1] - rows[n]["success_rate"] for n in names]
    steps = [rows[n]["avg_steps"] for n in names]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.bar(names, success, yerr=[lows, highs], capsize=4, color="#4477aa")
    a.set_ylim(0, 1)
    a.set_ylabel("success rate")
    b.bar(names, steps, color="#ee6677")
    b.set_ylabel("average steps")
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves(series: dict[str, list[dict[str, Any]]], path: Path, title: str) -> Path:
    """Success rate and average steps per task group, one line per condition."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, groups in series.items():
        xs = [g["group"] + 1 for g in groups]
        a.plot(xs, [g["success_rate"] for g in groups], marker="o", label=name)
        b.plot(xs, [g["avg_steps"] for g in groups], marker="o", label=name)
    a.set_ylim(0, 1)
    a.set_ylabel("success rate")
    b.set_ylabel("average steps")
    for ax in (a, b):
        ax.set_xlabel("task group")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def panels(series: dict[str, list[dict[str, Any]]], path: Path, title: str,
           metrics: list[tuple[str, str, bool]]) -> Path:
    """One panel per metric ``(key, label, is_rate)``, one line per condition, per task group.

    Rates get a 0–1 axis; e.g. TravelPlanner's final pass, constraint pass rates and steps.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.6), squeeze=False)
    for ax, (key, label, is_rate) in zip(axes[0], metrics):
        for name, groups in series.items():
            ax.plot([g["group"] + 1 for g in groups], [g[key] for g in groups], marker="o", label=name)
        if is_rate:
            ax.set_ylim(-0.02, 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.set_xlabel("task group")
    axes[0][0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
