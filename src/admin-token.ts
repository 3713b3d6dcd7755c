import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * The operator token: TOLLGATE_ADMIN_TOKEN when set, otherwise one generated on first start
 * and kept in the data folder, readable by its owner only.
 */
export async function loadAdminToken(dataDir: string, configured: string | undefined) {
  if (configured) return { token: configured, file: null };
  const file = path.join(dataDir, 'admin-token');
  try {
    return { token: (await readFile(file, 'utf8')).trim(), file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dataDir, { recursive: true });
  const token = `tga_${randomBytes(32).toString('base64url')}`;
  // 'wx' fails if another process wrote it first; then that one's token is the token.
  await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' }).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
  return { token: (await readFile(file, 'utf8')).trim(), file };
}
