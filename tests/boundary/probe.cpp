// One translation unit of tests/boundary: it includes PROBE_HEADER and nothing else, so whether it
// compiles says only whether the probe's target can see that header.
#include PROBE_HEADER

int phasekit_boundary_probe() { return 0; }
