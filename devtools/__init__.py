"""Development tools, not used in production: the sample-data generator
(`runner generate`), the IHC API emulator (`runner ihc-emulator`) and the benchmark
suite (`make bench`). The production package is `runner`."""
