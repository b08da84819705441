"""What every layer uses and nothing here depends on: errors and config checks, the registries,
resumable artifacts and their fault points, quiet logging, the version, and the percentile
arithmetic (windows) that the scores table and the selection rules share."""
