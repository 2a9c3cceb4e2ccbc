"""The task scheduler: schedules (cron, interval, one-time), task kinds, the scheduler
actor, its messages, pure state transitions, statistics and persistence."""
