import { describe, expect, it } from 'vitest';
import { asExecutionEvent, initialExecutionState, makeExecutionReducer, type ExecutionState } from '../../editor/src/execution-state.ts';

const reduce = makeExecutionReducer((img) => `/view/${img.type ?? 'output'}/${img.filename}`);

describe('execution-state reducer over the executor events', () => {
  it('tracks the running node, its progress, outputs and the gallery through one prompt', () => {
    let s: ExecutionState = initialExecutionState;
    s = reduce(s, { type: 'execution_start', data: { prompt_id: 'p', timestamp: 0 } });
    s = reduce(s, { type: 'executing', data: { node: '3', prompt_id: 'p' } });
    expect(s.runtime['3']).toEqual({ running: true });
    s = reduce(s, { type: 'progress', data: { node: '3', value: 2, max: 5, prompt_id: 'p' } });
    expect(s.runtime['3'].progress).toEqual({ value: 2, max: 5 });
    s = reduce(s, { type: 'executing', data: { node: '9', prompt_id: 'p' } });
    expect(s.runtime['3']).toEqual({ running: false, progress: undefined });
    s = reduce(s, {
      type: 'executed',
      data: { node: '9', display_node: '9', prompt_id: 'p', output: { images: [{ filename: 'a.png', subfolder: '', type: 'output' }] } },
    });
    expect(s.runtime['9'].images).toEqual(['/view/output/a.png']);
    expect(s.gallery).toEqual([{ src: '/view/output/a.png', promptId: 'p' }]);
    s = reduce(s, { type: 'executing', data: { node: null, prompt_id: 'p' } });
    expect(Object.values(s.runtime).some((r) => r.running)).toBe(false);
    // A new document: node ids mean other nodes; the gallery stays.
    s = reduce(s, { type: 'reset' });
    expect(s).toEqual({ runtime: {}, gallery: [{ src: '/view/output/a.png', promptId: 'p' }] });
  });

  it('puts errors on their nodes and clears them when the next prompt is queued', () => {
    let s = reduce(initialExecutionState, {
      type: 'node_errors',
      errors: { '2': [{ input: 'image', message: 'Required input is missing' }] },
    });
    s = reduce(s, {
      type: 'execution_error',
      data: {
        prompt_id: 'p',
        node_id: '5',
        node_type: 'KSampler',
        executed: [],
        exception_message: 'boom',
        exception_type: 'Error',
        traceback: [],
        current_inputs: {},
        current_outputs: [],
        timestamp: 0,
      },
    });
    expect(s.runtime['2'].errors).toEqual([{ input: 'image', message: 'Required input is missing' }]);
    expect(s.runtime['5']).toMatchObject({ running: false, errors: [{ message: 'boom' }] });
    s = reduce(s, { type: 'queued' });
    expect(Object.values(s.runtime).map((r) => r.errors)).toEqual([undefined, undefined]);
  });

  it('takes only executor events from the socket', () => {
    expect(asExecutionEvent({ type: 'status', data: {} })).toBeUndefined();
    expect(asExecutionEvent({ type: 'executing', data: { node: '1' } })?.type).toBe('executing');
  });
});
