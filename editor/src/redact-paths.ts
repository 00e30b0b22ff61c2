/**
 * Server file-system paths out of messages shown in the editor. The server already names its own
 * folders by role (`<models>/…`); anything else that looks like an absolute path (a library's
 * message, a custom node's) keeps only its last part, which is what the user can act on.
 */
const POSIX = /(^|[\s'"`(=,:[])(?:file:\/\/)?\/(?:[^\s'"`()[\],:/]+\/)+([^\s'"`()[\],:/]*)/g;
const WINDOWS = /(^|[\s'"`(=,:[])[A-Za-z]:[\\/](?:[^\s'"`()[\],:\\/]+[\\/])+([^\s'"`()[\],:\\/]*)/g;

export function stripPaths(text: string): string {
  return text
    .replace(POSIX, (_m, pre: string, base: string) => `${pre}…/${base}`)
    .replace(WINDOWS, (_m, pre: string, base: string) => `${pre}…\\${base}`);
}
