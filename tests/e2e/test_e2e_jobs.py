"""Jobs: classify an uploaded file in the background and download its results; train a model from an upload."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx

from tests.e2e.requirements import need_selenium

need_selenium()

from selenium.webdriver.support.ui import Select  # noqa: E402

from tests.e2e.browser import Browser  # noqa: E402
from tests.e2e.conftest import Site  # noqa: E402
from tests.e2e.data import LABELS, write_tickets  # noqa: E402

JOB_DEADLINE = 60.0


def texts_file(path: Path, rows: int) -> Path:
    """A CSV of `id` and `text` (no label column: the job adds `label` and `score`)."""
    tickets = write_tickets(path.with_suffix(".labelled.csv"), per_label=rows // len(LABELS) + 1, seed=7)
    with tickets.open(encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)][:rows]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows([i, text] for i, text in enumerate(texts))
    return path


def finished_download(directory: Path, name: str) -> bytes | None:
    """The file's bytes once Chromium has finished writing it (no `.crdownload` left), else None."""
    target = directory / name
    if not target.is_file() or any(directory.glob("*.crdownload")):
        return None
    return target.read_bytes() or None


def test_a_classify_job_runs_to_success_and_its_results_download(browser: Browser, site: Site, tmp_path: Path) -> None:
    upload = texts_file(tmp_path / "tickets.csv", 40)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    browser.sign_in(site.classify_key)
    browser.go("#/jobs")
    browser.wait_for("#job-model option[value='support']")
    assert browser.unlabelled_controls() == []
    browser.find("#job-file").send_keys(str(upload))
    Select(browser.find("#job-model")).select_by_value("support")
    browser.find("#classify-job button[type=submit]").click()

    item = browser.wait_for("#job-list li.job[data-kind=classify]")
    job_id = item.get_attribute("data-job")
    assert job_id
    assert job_id.startswith("job_")
    browser.wait_for_text(f"li.job[data-job='{job_id}'] .job-state", "succeeded", timeout=JOB_DEADLINE)
    card = browser.find(f"li.job[data-job='{job_id}']")
    assert "40 of 40 rows" in card.text
    assert "tickets.csv" in card.text
    browser.js("arguments[0].scrollIntoView({block: 'center'});", browser.find(f"li.job[data-job='{job_id}']"))
    browser.screenshot("jobs-classify-succeeded")

    browser.find(f"li.job[data-job='{job_id}'] button.download").click()
    content = browser.until(lambda _d: finished_download(downloads, f"{job_id}.csv"), "the results file to download")
    with httpx.Client(base_url=site.base, headers={"x-api-key": site.classify_key}, timeout=10) as client:
        served = client.get(f"/v1/jobs/{job_id}/results")
    assert served.status_code == 200
    assert content == served.content
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8"))))
    assert [row["id"] for row in rows] == [str(i) for i in range(40)]
    assert {row["label"] for row in rows} <= set(LABELS)
    assert all(0.0 <= float(row["score"]) <= 1.0 for row in rows)


def test_training_from_an_upload_succeeds_and_the_new_version_is_listed(
    browser: Browser, site: Site, tmp_path: Path
) -> None:
    upload = write_tickets(tmp_path / "labelled.csv", per_label=30, seed=11)
    browser.sign_in(site.admin_key)
    browser.go("#/jobs")
    browser.wait_for("#train-file").send_keys(str(upload))
    browser.find("#train-name").send_keys("tickets")
    Select(browser.find("#train-engine")).select_by_value("linear")
    browser.find("#train-job button[type=submit]").click()

    item = browser.wait_for("#job-list li.job[data-kind=train]")
    job_id = item.get_attribute("data-job")
    browser.wait_for_text(f"li.job[data-job='{job_id}'] .job-state", "succeeded", timeout=JOB_DEADLINE)
    with httpx.Client(base_url=site.base, headers={"x-api-key": site.admin_key}, timeout=10) as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
        versions = [v["version"] for v in client.get("/v1/models/tickets").json()["versions"]]
    assert job["state"] == "succeeded"
    version = job["result"]["version"]
    assert version in versions
    browser.js("arguments[0].scrollIntoView({block: 'center'});", browser.find(f"li.job[data-job='{job_id}']"))
    browser.screenshot("jobs-train-succeeded")

    browser.find(f"li.job[data-job='{job_id}'] a.open-model").click()
    browser.wait_for_text("h1", "tickets")
    browser.wait_for_text(".versions-table", version)
    browser.wait_for_text("#report-title", version)
