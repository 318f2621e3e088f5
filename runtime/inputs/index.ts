// Browser-safe model inputs: tokenizer, chat template, image processor, messages → input_ids + pixel values.
// Node-only helpers (folder loader, file/data: URL image loader, PNG/JPEG decode) are in *.node.ts next to these.
export { HfTokenizer, type DecodeTextOptions, type EncodeTextOptions } from "./hf-tokenizer.ts";
export { JinjaChatTemplate, selectChatTemplate, type RenderOptions, type TemplateMessage } from "./jinja-template.ts";
export {
  QwenImageProcessor,
  parseImageProcessorConfig,
  resizeBicubicPil,
  roundHalfEven,
  smartResize,
  toRgb,
  type ImageProcessorConfig,
  type ProcessedImage,
} from "./image-processor.ts";
export { checkPixelLimit, DEFAULT_MAX_INPUT_PIXELS, readImageHeader, sniffImageFormat, type ImageFormat, type ImageHeader } from "./image-header.ts";
export { decodeBrowserImage, imageDataToRgb, type BrowserDecodeOptions, type BrowserImageSource } from "./image-decode.ts";
export {
  CellImageProcessor,
  ChatInputProcessor,
  type EncodeOptions,
  type ImageLoader,
  type ImagePreprocessor,
  type InputContentPart,
  type InputImagePart,
  type InputImageUrlPart,
  type InputMessage,
  type InputProcessor,
  type InputProcessorFiles,
  type InputTextPart,
  type ModelImageInput,
  type ModelInputs,
  type VisionTokenIds,
} from "./processor.ts";
