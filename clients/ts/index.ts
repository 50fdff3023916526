// blockgate's TypeScript client and the kind classes it sends and receives.
export { Client, type ClientOptions, type RunOptions, type RunResult } from './client.ts'
export * from './errors.ts'
export { Detections } from '../../serializers/detections/index.ts'
export { WorkflowImage } from '../../serializers/image/index.ts'
export { NDArray } from '../../serializers/ndarray/index.ts'
export { VideoMetadata } from '../../serializers/video_metadata/index.ts'
