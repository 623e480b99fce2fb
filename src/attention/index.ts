/** anywidget entry for the attention inspector (bundled to lenswidget/static/attention.js). */
import { render } from "./view";

export { render };
export default { render };
