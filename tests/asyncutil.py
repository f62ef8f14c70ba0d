"""Run a coroutine to its end from a test, whatever loop the test process already runs."""
import asyncio
import concurrent.futures


def run_coroutine(coro):
    """``asyncio.run(coro)`` in a worker thread: a library that keeps an event loop running in the main thread
    (Playwright's sync API) would make ``asyncio.run`` there raise."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
