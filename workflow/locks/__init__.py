"""Study locks: the pure lock table, the lock manager actor that supplies time and
waiting, its messages and types, and the client helpers (`study_lock`)."""
