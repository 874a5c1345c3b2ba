/// <reference lib="dom" />
// The API key the viewer sends when the server runs with --api-keys. Kept in sessionStorage: it
// lives as long as the browser tab's session and is never written into the page's URL (the
// fragment holds only the run's settings), so a shared link never carries it.

const STORAGE_KEY = 'lensgate.apiKey';

export function storedApiKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY) || null;
  } catch {
    return null; // storage disabled: the key lives only in the field
  }
}

export function storeApiKey(key: string): void {
  try {
    if (key) sessionStorage.setItem(STORAGE_KEY, key);
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage disabled
  }
}
