export interface LoopHooks {
  /** cb runs before every blocking wait (the Ring submits its queued SQEs there). Returns a remover. */
  onPrepare(cb: () => void): () => void;
  /** cb runs when fd is readable (level-triggered). Returns a remover. */
  watchReadable(fd: number, cb: () => void): () => void;
}
