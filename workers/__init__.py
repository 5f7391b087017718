"""RQ job functions by domain, the worker/cron runners and the instrument listener process."""
