"""The lab's tuned run settings: what `prefsift run` uses on the embedded lab (and with
`preset: lab`) where a config leaves a setting out. Everywhere else the defaults are neutral
(TRL's, `pipeline.config.NEUTRAL`).

β and the learning rates were chosen on the lab's *validation* prompts (never its test prompts): at
β 0.1 or a learning rate of 3e-4 or more, further DPO epochs lowered the oracle WinRate of the
tiny model. Answers are short (a list of digits), and the lab's programmatic oracle judges them."""

LAB_RUN_SETTINGS = {
    "beta": 0.5,
    "judge": "oracle",
    "max_new_tokens": 12,
    "warmup": {"epochs": 1, "learning_rate": 1e-4, "batch_size": 16},
    "final": {"epochs": 2, "learning_rate": 1e-4, "batch_size": 16},
}
