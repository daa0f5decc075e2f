"""benchmarks/recompression_table.py: each file's own size beside the codecs' sizes and their ratios."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import recompression_table  # noqa: E402


def test_table_gives_each_file_its_size_and_the_ratios(tmp_path):
    (tmp_path / "a.dcm").write_bytes(bytes(1000))
    (tmp_path / "b.dcm").write_bytes(bytes(3000))

    def record(name, pixels, mlc, jxl):
        return {"path": f"/gone/{name}", "relpath": name, "status": "ok", "pixels": pixels,
                "results": {"medcodec-fast": {"status": "ok", "bytes": mlc}, "jxl9": {"status": "ok", "bytes": jxl}}}

    bench = {"images": [record("a.dcm", 10**6, 500, 450), record("b.dcm", 2 * 10**6, 1500, 1800),
                        {"relpath": "c.dcm", "status": "skipped"}]}
    for r in bench["images"][:2]:
        r["results"]["webp"] = {"status": "n/a"}  # a codec that coded none of them: no total
    text = recompression_table.table(bench, tmp_path)
    lines = text.splitlines()
    assert lines[0] == "| file | MP | file bytes | medcodec fast | JPEG-XL e9 | WebP-LL |"
    assert lines[2] == "| a.dcm | 1.00 | 1,000 | 500 (0.500) | 450 (0.450) | - |"
    assert lines[-1] == "| **all** | 3.00 | 4,000 | 2,000 (0.500) | 2,250 (0.562) | - |"
