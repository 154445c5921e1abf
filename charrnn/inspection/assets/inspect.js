const D = JSON.parse(document.getElementById('data').textContent);
const tip = document.getElementById('tip');
function spans(box,limit){const out=[];for(const ch of Array.from(D.text).slice(0,limit)){const s=document.createElement('span');
s.textContent=ch;box.appendChild(s);out.push(s);}return out;}
const sur=spans(document.getElementById('surprisal'),D.bits.length);
sur.forEach((s,t)=>{const b=D.bits[t];const l=100-Math.min(b,10)*5.5;
s.style.background=`hsl(8,85%,${l}%)`;s.dataset.t=t;});
function show(e,t){const ch=JSON.stringify(D.text[t]);let lines=[`${ch}: ${D.bits[t].toFixed(2)} bits`,
'next, the model expects:'];for(let j=0;j<D.top;j++){const id=D.topIds[t*D.top+j];
lines.push(`  ${D.vocab[id].padEnd(6)} ${(100*D.topProbs[t*D.top+j]).toFixed(1)}%`);}
tip.textContent=lines.join('\n');tip.style.display='block';
tip.style.left=Math.min(e.clientX+14,innerWidth-260)+'px';tip.style.top=(e.clientY+14)+'px';}
document.getElementById('surprisal').addEventListener('mouseover',e=>{
if(e.target.dataset.t!==undefined)show(e,+e.target.dataset.t);});
document.getElementById('surprisal').addEventListener('mouseleave',()=>tip.style.display='none');
const neu=spans(document.getElementById('neurons'),D.neuronChars);
document.getElementById('neuron-chars').textContent=D.neuronChars.toLocaleString('en');
const cache={};function acts(state,layer){const key=state+layer;if(!cache[key]){
const raw=atob(D.states[state][layer].data);const a=new Int8Array(raw.length);
for(let i=0;i<raw.length;i++)a[i]=raw.charCodeAt(i)<<24>>24;cache[key]=a;}return cache[key];}
const sel={state:document.getElementById('state'),layer:document.getElementById('layer'),
unit:document.getElementById('unit')};
for(const s of Object.keys(D.states)){const o=document.createElement('option');o.value=s;
o.textContent=s==='hidden'?'hidden state h':'cell state c';sel.state.appendChild(o);}
for(let l=0;l<D.states.hidden.length;l++){const o=document.createElement('option');o.value=l;
o.textContent='layer '+(l+1);sel.layer.appendChild(o);}
sel.unit.max=D.hiddenSize-1;
function paint(){const st=sel.state.value,l=+sel.layer.value,u=Math.max(0,Math.min(+sel.unit.value,D.hiddenSize-1));
const a=acts(st,l),H=D.hiddenSize,sc=D.states[st][l].scale[u];
neu.forEach((s,t)=>{const v=a[t*H+u]/127;const c=v>0?'214,39,40':'31,119,180';
s.style.background=`rgba(${c},${Math.abs(v).toFixed(3)})`;s.title=(v*sc).toFixed(3);});
document.getElementById('which').textContent=`layer ${l+1}, ${st} unit ${u} (red positive, blue negative; full colour = ${sc.toFixed(2)})`;}
function pick(m){sel.state.value=m.state;sel.layer.value=m.layer;sel.unit.value=m.unit;paint();}
Object.values(sel).forEach(x=>x.addEventListener('change',paint));
const body=document.getElementById('matches');
D.matches.forEach(m=>{const r=document.createElement('tr');r.className='pick';
r.innerHTML=`<td></td><td>layer ${m.layer+1} ${m.state}</td><td>unit ${m.unit}</td><td>r = ${m.r.toFixed(2)}</td>`;
r.firstChild.textContent=m.feature;r.addEventListener('click',()=>pick(m));body.appendChild(r);});
if(D.matches.length){const best=[...D.matches].sort((a,b)=>Math.abs(b.r)-Math.abs(a.r))[0];pick(best);}else paint();
