// A command used wrongly (unknown command, missing argument): the CLI prints it with the usage and
// exits 2, where a refusal by the CoreAPI exits 1.
export class UsageError extends Error {}
