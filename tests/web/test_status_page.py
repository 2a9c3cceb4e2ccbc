"""The status page in a real headless Chromium: it loads without console errors, shows
an association opened by DCMTK echoscu, and its stores-per-second chart moves while
storescu sends."""

from __future__ import annotations

import trio
from dicom_samples import SeriesSpec, write_series
from peers import echoscu, storescu

from node.nodes import peer, running_node
from web.browser import open_page
from web.client import base_url


async def test_the_status_page_shows_associations_and_stores_per_second(tmp_path):
    write_series(tmp_path / "in", SeriesSpec(count=150, modality="MR"))
    async with running_node(tmp_path) as node:
        async with open_page(base_url(node) + "/", tmp_path / "chromium") as page:
            await page.wait_until("document.getElementById('ae').textContent === 'TRIOPACS'")
            await page.wait_until("document.querySelectorAll('#tiers tbody tr').length === 1")
            (await echoscu(peer(node), calling_ae="PAGEWATCH")).check()
            # The association (opened and released by echoscu) is shown, from the event stream.
            await page.wait_until("document.querySelector('#associations tbody').textContent.includes('PAGEWATCH')")
            # storescu sends while the page polls its statistics every second.
            async with trio.open_nursery() as nursery:
                sent = trio.Event()

                async def send() -> None:
                    for _ in range(3):
                        (await storescu(peer(node), [tmp_path / "in"])).check(expected=150)
                    sent.set()

                nursery.start_soon(send)
                moved = await page.wait_until("Math.max(...JSON.parse(document.getElementById('chart').dataset.points)) > 0", timeout=60)
                await sent.wait()
            assert moved
            await page.wait_until("document.getElementById('stored').textContent === '450'")
            assert page.errors == [], page.errors
