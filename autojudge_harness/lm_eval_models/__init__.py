"""lm-eval models. Import ``registration`` to register them; the backends load lazily."""
