"""What the notebook tests share: running a notebook under papermill in a process, its
outputs, and a folder of images for the ingest notebook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent.parent / "notebooks"


def outputs(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def start(name: str, out: Path, **parameters) -> subprocess.Popen:
    args = [sys.executable, "-m", "papermill", str(NOTEBOOKS / f"{name}.ipynb"), str(out), "--log-level", "ERROR",
            "-k", "python3"]
    for key, value in parameters.items():
        args += ["-p", key, str(value)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def make_images(folder: Path) -> dict:
    from PIL import Image, PngImagePlugin

    (folder / "sub" / "deeper").mkdir(parents=True)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "masterpiece, (a red fox:1.2), snowy forest, [detailed]\n"
                                "Negative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7")
    Image.new("RGB", (64, 48), "red").save(folder / "fox.png", pnginfo=info)
    Image.new("RGB", (32, 32), "blue").save(folder / "sub" / "plain.PNG")
    Image.new("RGB", (40, 30), "green").save(folder / "sub" / "deeper" / "photo.jpg", quality=80)
    Image.new("RGB", (20, 10), "white").save(folder / "photo2.jpeg")
    good = (folder / "fox.png").read_bytes()
    (folder / "broken.png").write_bytes(good[: len(good) // 2])  # truncated: corrupt
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub" / "image.gif").write_bytes(b"GIF89a")  # does not match the pattern
    return {"images": 4, "corrupt": 1}
