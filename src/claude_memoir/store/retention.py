"""Retention: raw tool event bodies are dropped once they served their purpose."""

from __future__ import annotations

from .connection import NOW as _NOW
from .connection import Connected

# Events thinned per transaction: a hook waits at most 1.5 s for the write
# lock, so retention holds it briefly, many times, never for one long sweep.
PRUNE_CHUNK = 500


class RetentionQueries(Connected):
    """Retention: raw tool event bodies are dropped once they served their purpose."""

    def prune_event_bodies(self, older_than_days: float) -> int:
        """Empty the bodies of events processed more than ``older_than_days`` ago.

        Their observations and the prompts' summaries are what memory keeps;
        the raw input and output were only the agent's material. The rows stay
        (tool, time, status, ``pruned_at``). Returns how many were thinned.
        """
        if older_than_days <= 0:
            return 0
        modifier = f"-{float(older_than_days)} days"
        total = 0
        while True:
            with self.transaction() as conn:
                cur = conn.execute(
                    "UPDATE events SET tool_input = 'null', tool_response = 'null',"
                    f" pruned_at = {_NOW} WHERE id IN (SELECT id FROM events"
                    "   WHERE status = 'processed' AND pruned_at IS NULL"
                    "   AND processed_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?) LIMIT ?)",
                    (modifier, PRUNE_CHUNK))
                total += cur.rowcount
            if cur.rowcount < PRUNE_CHUNK:
                return total

    def storage_sizes(self) -> dict[str, int]:
        """Bytes the database uses (``page_count * page_size``) and holds free for reuse."""
        pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])
        size = int(self.conn.execute("PRAGMA page_size").fetchone()[0])
        free = int(self.conn.execute("PRAGMA freelist_count").fetchone()[0])
        return {"bytes": pages * size, "free_bytes": free * size}
