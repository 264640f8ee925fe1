#!/usr/bin/env python3
"""Which tables and indexes a SQLite write load dirties: the frames of the current WAL
generation, grouped by the B-tree that owns each page.

Why: the switch's bytes written per request (benches/scripts/run.sh) are WAL frames and their
checkpoint copies; each frame is one dirty page of one B-tree. Knowing which B-trees the
frames belong to says which table or index to narrow, reorder or drop (issue 27).

    benches/scripts/wal_pages.py DB_COPY WAL_COPY [TXN_ROWS]

Copy the database and its -wal file while the switch runs (cp db db.copy; cp db-wal
db.copy-wal): the copy may end with a torn frame, which is ignored. Frames belong to the
current generation when their salts equal the WAL header's (the log rewinds; older frames past
the rewind point keep the old salts). TXN_ROWS, when given, is the number of decisions those
frames hold, and the table then shows pages per decision. Page owners are read with SQLite's
dbstat virtual table from the copy (python3's sqlite3 has it).
"""
import collections
import os
import shutil
import sqlite3
import struct
import sys
import tempfile


def frames(wal_path):
    with open(wal_path, "rb") as f:
        header = f.read(32)
        magic, _version, page_size, _seq, salt1, salt2 = struct.unpack(">IIIIII", header[:24])
        if magic not in (0x377F0682, 0x377F0683):
            sys.exit(f"{wal_path}: not a WAL file")
        pages, commits = [], 0
        while True:
            fh = f.read(24)
            if len(fh) < 24:
                break
            pgno, commit_size, s1, s2 = struct.unpack(">IIII", fh[:16])
            body = f.read(page_size)
            if len(body) < page_size or (s1, s2) != (salt1, salt2):
                break
            pages.append(pgno)
            if commit_size:
                commits += 1
    return page_size, pages, commits


def owners(db_path, wal_path):
    tmp = tempfile.mkdtemp()
    db = os.path.join(tmp, "db")
    shutil.copy(db_path, db)
    shutil.copy(wal_path, db + "-wal")
    con = sqlite3.connect(db)
    own = {pg: name for name, pg in con.execute("SELECT name, pageno FROM dbstat")}
    con.close()
    shutil.rmtree(tmp)
    return own


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    db_path, wal_path = sys.argv[1], sys.argv[2]
    decisions = int(sys.argv[3]) if len(sys.argv) > 3 else None
    page_size, pages, commits = frames(wal_path)
    own = owners(db_path, wal_path)
    by = collections.Counter(own.get(p, "(free or new)") for p in pages)
    print(f"page size {page_size}, {len(pages)} frames, {commits} commits, "
          f"{len(pages) / max(commits, 1):.1f} frames per commit")
    for name, n in by.most_common():
        per = f"  {n / decisions:6.3f} per decision" if decisions else ""
        print(f"  {name:34} {n:8} frames {100 * n / len(pages):5.1f} %{per}")


if __name__ == "__main__":
    main()
