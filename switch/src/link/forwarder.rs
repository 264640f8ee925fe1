//! Store-and-forward reversals (placeholder until written below).
