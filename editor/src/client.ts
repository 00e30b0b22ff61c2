import { ApiClient } from './api.ts';

/** The page's one connection to the server it was served from. */
export const api = new ApiClient();
