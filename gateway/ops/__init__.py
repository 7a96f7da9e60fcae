"""Operations: metrics, structured logs, alerts, systemd notifications, scheduled jobs."""
