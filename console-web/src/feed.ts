// The live feed's buffer: events arrive faster than a page should repaint (50 defects/s and more), so they
// wait in a bounded queue that the page drains once per animation frame. What does not fit is counted, and
// shown as "n more", instead of growing without bound and freezing the browser.

export interface Region {
  label: string;
  score: number;
  box: { x_min: number; y_min: number; x_max: number; y_max: number };
  crop: string | null;
}

export interface DefectItem {
  event_id: string;
  camera_id: string;
  line_id: string;
  station_id: string;
  frame_number: number;
  part_id: string | null;
  captured_at: string;
  detected_at: string;
  latency_ms: number;
  model: { name: string; version: string };
  verdict: string;
  regions: Region[];
  received_ms: number;
}

export class FeedBuffer {
  private pending: DefectItem[] = [];
  private shown: DefectItem[] = [];
  private readonly seen = new Set<string>();
  dropped = 0;

  constructor(
    readonly visible: number = 60,
    readonly pendingMax: number = 200,
  ) {}

  /** Queue one event; false when it was only counted (queue full) or was a duplicate. */
  push(item: DefectItem): boolean {
    if (this.seen.has(item.event_id)) {
      return false;
    }
    if (this.pending.length >= this.pendingMax) {
      this.dropped += 1;
      return false;
    }
    this.seen.add(item.event_id);
    this.pending.push(item);
    return true;
  }

  /** Events the server itself could not send to this page (its "more" message). */
  addDropped(count: number): void {
    this.dropped += Math.max(0, Math.floor(count));
  }

  /** Move the queued events into the shown list (newest first, at most ``visible``); returns the new ones. */
  drain(): DefectItem[] {
    const fresh = this.pending;
    this.pending = [];
    if (fresh.length === 0) {
      return fresh;
    }
    const newestFirst = fresh.slice().reverse();
    this.shown = newestFirst.concat(this.shown).slice(0, this.visible);
    // Forget ids that scrolled out so the set stays as small as the list.
    const keep = new Set(this.shown.map((i) => i.event_id));
    for (const id of this.seen) {
      if (!keep.has(id) && !this.pending.some((p) => p.event_id === id)) {
        this.seen.delete(id);
      }
    }
    return newestFirst;
  }

  items(): readonly DefectItem[] {
    return this.shown;
  }

  pendingCount(): number {
    return this.pending.length;
  }
}

/** The highest-scoring region, which the card names. */
export function topRegion(item: DefectItem): Region | null {
  let best: Region | null = null;
  for (const region of item.regions) {
    if (best === null || region.score > best.score) {
      best = region;
    }
  }
  return best;
}
