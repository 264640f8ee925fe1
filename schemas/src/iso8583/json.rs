//! JSON form of messages (CLI).
