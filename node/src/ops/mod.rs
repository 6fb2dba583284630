//! What an operator runs against an office's store: the backup file,
//! `GET /v1/backup` and `jobmesh restore`.

pub mod backup;
