"""How many dossiers per second the mock portal accepts over HTTP, in batches of 100.

Starts ``dossier-sync mock-portal`` as its own process (one server process, as in
production use), then from this process:

1. baseline: small look-up calls (``TraCuuHoSo`` of one code), the cost of a request
   with next to no work;
2. the measured run: ``DongBoHoSoMC`` creates of 100 valid dossiers each.

Both use the same HTTP client settings and concurrency, so their ratio says how much
of a batch's time goes into validating and storing 100 dossiers. Usage::

    .venv/bin/python bench/mock_portal_throughput.py [--dossiers 20000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from benchutil import machine

from app.mockportal.server import free_port

UNIT = "000.00.00.H26"
AGENCIES = ["000.00.53.H26", "000.00.54.H26", "000.00.02.H26", "000.00.05.H26"]


def dossier(n: int) -> dict[str, Any]:
    """A valid dossier received and being processed (status 4), with realistic fields."""
    agency = AGENCIES[n % len(AGENCIES)]
    return {
        "MaHoSo": f"{agency}-241127-{n:07d}",
        "MaTTHC": "1.000656",
        "TenTTHC": "Đăng ký khai sinh",
        "MaLinhVuc": "HT",
        "TenLinhVuc": "Hộ tịch",
        "KenhThucHien": 2,
        "ChuHoSo": "Nguyễn Văn An",
        "LoaiDoiTuong": 1,
        "SoGiayToChuHoSo": "001204567845",
        "SoDienThoai": "0912345678",
        "Email": "an.nguyen@example.vn",
        "TrichYeuHoSo": "Đăng ký khai sinh cho con",
        "NgayNopHoSo": "20241127080000",
        "NgayTiepNhan": "20241127083000",
        "NgayHenTra": "20241128170000",
        "TrangThaiHoSo": "4",
        "DonViXuLy": "UBND phường",
        "HoSoCoThanhPhanSoHoa": 1,
        "DuocThanhToanTrucTuyen": 0,
        "TaiLieuNop": [{"TepDinhKemId": f"f-{n}", "TenTepDinhKem": "Tờ khai.pdf", "DuocSoHoa": 1}],
    }


def start_mock(port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "app",
        "mock-portal",
        "--port",
        str(port),
        "--rate",
        "1000000",
        "--burst",
        "1000000",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/dvcqg/auth", json={}, timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
        else:
            return process
    process.kill()
    raise RuntimeError("the mock portal did not start")


async def run(concurrency: int, calls: int, make_call: Callable[[int], Awaitable[None]]) -> float:
    """Seconds to make ``calls`` calls with ``concurrency`` in flight."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(calls):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            await make_call(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bench(base_url: str, dossiers: int, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        login = await http.post(
            "/dvcqg/auth", json={"username": UNIT, "password": "demo"}, headers={"dstcode": UNIT}
        )
        session = login.json()["session"]
        headers = {"dstcode": UNIT}
        common = {"session": session, "madonvi": UNIT}
        batches = [
            [dossier(n) for n in range(start, min(start + 100, dossiers))]
            for start in range(0, dossiers, 100)
        ]
        accepted = 0

        async def push(index: int) -> None:
            nonlocal accepted
            response = await http.post(
                "/dvcqg/integration",
                json=common
                | {"service": "DongBoHoSoMC", "isUpdating": "False", "data": batches[index]},
                headers=headers,
            )
            body = response.json()
            accepted += sum(1 for item in body["data"] if item["error_code"] == 0)

        async def look_up(_: int) -> None:
            response = await http.post(
                "/dvcqg/share",
                json=common | {"service": "TraCuuHoSo", "mahoso": batches[0][0]["MaHoSo"]},
                headers=headers,
            )
            response.raise_for_status()

        await run(concurrency, 50, look_up)  # warm-up: connections, caches
        baseline_s = await run(concurrency, len(batches), look_up)
        push_s = await run(concurrency, len(batches), push)

    requests = len(batches)
    print(
        f"dossiers sent        {dossiers}  in {requests} batches of ≤100, concurrency {concurrency}"
    )
    print(f"accepted             {accepted}")
    print(f"baseline look-ups    {requests / baseline_s:8.0f} requests/s")
    print(f"DongBoHoSoMC         {requests / push_s:8.1f} requests/s")
    print(f"accepted dossiers/s  {accepted / push_s:8.0f}   (target ≥ 2000)")
    print(f"batch cost / look-up cost: {push_s / baseline_s:.1f}×")
    if accepted != dossiers:
        raise SystemExit("not every dossier was accepted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dossiers", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    process = start_mock(port)
    try:
        asyncio.run(bench(f"http://127.0.0.1:{port}", args.dossiers, args.concurrency))
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(machine())


if __name__ == "__main__":
    main()
