import CLBackend; print(_probeKernelSource())
