// The review queue's keyboard: one key per decision, so an engineer can review without the mouse.
//   c / Enter  confirm the model's verdict      g  mark the frame good
//   1-9        pick defect class n              x  drop (or restore) the selected box
//   Tab        select the next box              s / ArrowRight  skip to the next frame

export type ReviewAction =
  | { kind: "confirm" }
  | { kind: "good" }
  | { kind: "relabel"; label: string }
  | { kind: "toggle-box" }
  | { kind: "next-box" }
  | { kind: "skip" };

export function reviewAction(key: string, classes: readonly string[]): ReviewAction | null {
  switch (key) {
    case "c":
    case "Enter":
      return { kind: "confirm" };
    case "g":
      return { kind: "good" };
    case "x":
      return { kind: "toggle-box" };
    case "Tab":
      return { kind: "next-box" };
    case "s":
    case "ArrowRight":
      return { kind: "skip" };
    default:
      break;
  }
  if (/^[1-9]$/.test(key)) {
    const label = classes[Number(key) - 1];
    return label === undefined ? null : { kind: "relabel", label };
  }
  return null;
}

export interface ReviewBox {
  label: string;
  x_min: number;
  y_min: number;
  x_max: number;
  y_max: number;
}

export interface ReviewBody {
  camera_id: string;
  frame_number: number;
  model_version: string;
  label: string;
  action: "confirm" | "good" | "relabel";
  boxes?: ReviewBox[];
}

/** The body of POST /api/reviews for a decision on a frame; ``kept`` are the boxes not dropped. */
export function reviewBody(
  item: { camera_id: string; frame_number: number; model: { version: string } },
  action: ReviewAction,
  modelLabel: string,
  kept: readonly ReviewBox[],
): ReviewBody | null {
  const key = { camera_id: item.camera_id, frame_number: item.frame_number, model_version: item.model.version };
  if (action.kind === "good") {
    return { ...key, label: "good", action: "good", boxes: [] };
  }
  if (action.kind === "confirm") {
    return { ...key, label: modelLabel, action: "confirm", boxes: kept.slice() };
  }
  if (action.kind === "relabel") {
    return { ...key, label: action.label, action: "relabel", boxes: kept.map((b) => ({ ...b, label: action.label })) };
  }
  return null;
}
