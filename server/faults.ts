/**
 * Process-level (or worker-level) handlers: a custom node's stray promise rejection or throwing
 * timer would otherwise end the process. Each fault goes to `onFault`, which fails the prompt that
 * was running; with no prompt running it is only logged. Returns the uninstaller.
 */
export function installFaultHandlers(onFault: (error: Error, kind: 'unhandled rejection' | 'uncaught exception') => void): () => void {
  const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));
  const onRejection = (reason: unknown): void => onFault(asError(reason), 'unhandled rejection');
  const onException = (error: unknown): void => onFault(asError(error), 'uncaught exception');
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
