/** anywidget entry for the drag-to-patch widget (bundled to lenswidget/static/patcher.js). */
import { render } from "./view";

export { render };
export default { render };
