// The review queue's keyboard: one key per decision, so an engineer can review without the mouse.
//   c / Enter  confirm the model's verdict      g  mark the frame good
//   1-9        pick defect class n              x  drop (or restore) the selected box
//   Tab        select the next box              s / ArrowRight  skip to the next frame
export function reviewAction(key, classes) {
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
/** The body of POST /api/reviews for a decision on a frame; ``kept`` are the boxes not dropped. */
export function reviewBody(item, action, modelLabel, kept) {
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
