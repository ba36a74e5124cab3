"""A GPU kernel job in JupyterLab, in a real browser, from the Lab profile: the
Launcher's card, the queue's news while every GPU is taken, Cancel, then the kernel
again, a cell run while its job waits, and the cell's output once it has a GPU.

Debian's Chromium, driven by Playwright. Screenshots go to tests/artifacts/.
"""

import subprocess
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from ..support.browser import ARTIFACTS, chromium
from ..support.hub import HUB_URL, demo_password, squeue_active

USER = "demo13"
CARD = "PyTorch · 1 GPU (Slurm job)"
CELL = "import os, socket; print('GPU', os.environ['CUDA_VISIBLE_DEVICES'], socket.gethostname())"


def kernel_jobs() -> list[str]:
    rows = squeue_active(["-u", USER, "-o", "%i %j"]).splitlines()
    return [row.split()[0] for row in rows if row.split()[1].startswith("factorylab-kernel-")]


@pytest.fixture
def page():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright, chromium(playwright) as page:
        yield page


def test_lab_launcher_pending_cancel_then_first_cell(hub, session, gpus_full, page):
    # an earlier run's notebooks and layout must not hide the Launcher
    subprocess.run(f"rm -f /home/{USER}/Untitled*.ipynb", shell=True, check=True)
    session(USER, {"profile": "lab"})
    page.goto(f"{HUB_URL}/hub/login")
    page.fill("#username_input", USER)
    page.fill("#password_input", demo_password())
    page.click("#login_submit")
    page.goto(f"{HUB_URL}/user/{USER}/lab?reset")
    try:
        card = page.locator(".jp-LauncherCard", has_text=CARD).first
        card.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "kernel-job-launcher.png"))
        card.click()  # a new notebook on the kernel job

        # every GPU is taken: the job waits, and the Lab says why and where in line
        toast = page.locator(".Toastify__toast", has_text="waits in the queue")
        toast.wait_for(timeout=30_000)
        expect(toast).to_contain_text("Waiting for a free GPU in partition gpu", timeout=30_000)
        expect(toast).to_contain_text("in line")
        page.screenshot(path=str(ARTIFACTS / "kernel-job-pending.png"))
        [waiting] = kernel_jobs()
        assert squeue_active(["-j", waiting, "-o", "%T"]) == "PENDING"

        # Cancel leaves no job, and the notebook says what happened
        toast.get_by_role("button", name="Cancel").click()
        started = time.monotonic()
        while kernel_jobs():
            assert time.monotonic() - started < 10, "Cancel left the kernel job"
            time.sleep(0.25)
        failed = page.locator(".jp-Dialog", has_text=f"Kernel job {waiting} was cancelled")
        failed.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "kernel-job-cancelled.png"))
        failed.get_by_role("button", name="Ok").click()

        # the user selects the kernel again (the toolbar's kernel name) and, while its new
        # job waits, runs a cell: the Lab holds it, and runs it once the job has a GPU
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        panel.locator(".jp-Toolbar-kernelName").click()
        select = page.locator(".jp-Dialog", has_text="Select Kernel")
        select.locator("select").select_option(label=CARD)
        select.get_by_role("button", name="Select").click()
        toast.wait_for(timeout=30_000)
        cell = panel.locator(".jp-Cell").last
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.type(CELL)
        page.keyboard.press("Shift+Enter")
        [waiting] = kernel_jobs()
        assert squeue_active(["-j", waiting, "-o", "%T"]) == "PENDING"
        subprocess.run(["scancel", *gpus_full], check=True)  # GPUs free again
        output = panel.locator(".jp-OutputArea-output").first
        expect(output).to_contain_text("GPU ", timeout=120_000)
        [job] = kernel_jobs()
        node = squeue_active(["-j", job, "-o", "%N"])
        assert node in output.inner_text()
        page.screenshot(path=str(ARTIFACTS / "kernel-job-first-cell.png"))
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "kernel-job-failure.png"))
        raise
