//! Training: optimisers with saveable state, schedules, checkpoints, the search and training loops.
