// Preloaded (node --expose-gc --import) into a Recall child process by the fuzz test, never by Recall itself: on
// SIGUSR2 it collects garbage and prints the heap still in use, so memory can be compared without GC noise.
process.on('SIGUSR2', () => {
  globalThis.gc();
  globalThis.gc();
  process.stderr.write(`heap-used ${process.memoryUsage().heapUsed}\n`);
});
