"""What people read: the run, compare and micro-benchmark pages (one page shell), the analysis
derived once, pure checks, charts and the console tables."""
